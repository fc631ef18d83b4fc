package control

import (
	"context"
	"fmt"
	"testing"

	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// joinWorld is benchWorld with the nodes in a real SQLite store, as a
// registration needs.
func joinWorld(b *testing.B, n int) *world {
	b.Helper()
	st, err := store.Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return benchWorldIn(b, n, st)
}

// saveBenchRows inserts rows (IDs set by the store) in one transaction.
func saveBenchRows(b testing.TB, st *store.Store, rows []*store.Node) {
	ctx := context.Background()
	err := st.Update(ctx, func(tx *store.Tx) error {
		for _, row := range rows {
			row.ID = 0
			if err := tx.SaveNode(ctx, row); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkJoin measures the owner goroutine's share of one registration
// in a full mesh of n connected nodes, end to end as serveRegister hands
// it to the owner (world.register: the auth key checks, the SQLite
// transaction, the policy update, the new node's view and one enqueue per
// peer), followed by its map session starting (world.startSession's
// owner-side work is not included; see BenchmarkMembershipChange). The
// sessions' queues are drained untimed.
func BenchmarkJoin(b *testing.B) {
	for _, n := range []int{1_000, 5_000, 10_000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			w := joinWorld(b, n)
			ctx := context.Background()
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				req := &tailcfg.RegisterRequest{Version: tailcfg.CurrentCapabilityVersion, NodeKey: key.NewNode().Public(),
					Auth: &tailcfg.RegisterResponseAuth{AuthKey: aliceKey}, Hostinfo: &tailcfg.Hostinfo{Hostname: fmt.Sprint("joiner", i)}}
				if r := w.register(ctx, key.NewMachine().Public(), req, "alice", nil); r.Error != "" {
					b.Fatal(r.Error)
				}
				b.StopTimer()
				for _, p := range w.live {
					p.sess.take()
				}
				b.StartTimer()
			}
		})
	}
}
