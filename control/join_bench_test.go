package control

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// joinWorld builds a world of n nodes of alice's, loaded from a real
// SQLite store as at start-up, every one with a live session, under the
// default allow-all policy: a full mesh.
func joinWorld(b *testing.B, n int) *world {
	b.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	base := netip.MustParseAddr("100.64.0.0")
	err = st.Update(ctx, func(tx *store.Tx) error {
		for i := range n {
			base = base.Next()
			row := &store.Node{StableID: fmt.Sprintf("n%d", i), MachineKey: key.NewMachine().Public().String(),
				NodeKey: key.NewNode().Public().String(), GivenName: fmt.Sprintf("node-%d", i), UserLogin: "alice@example.com",
				IPv4: base.String(), CreatedAt: time.Now()}
			if err := tx.SaveNode(ctx, row); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	rows, err := st.Nodes(ctx)
	if err != nil {
		b.Fatal(err)
	}
	srv := &Server{now: time.Now, logf: func(string, ...any) {}, derpMap: &tailcfg.DERPMap{}, relay: newRelayAdmission(time.Now), store: st}
	c, err := srv.Prepare(testTailnet())
	if err != nil {
		b.Fatal(err)
	}
	w, err := newWorld(ctx, srv, c, rows, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, nd := range w.nodes {
		nd.sess = newSession(nd.id)
		nd.online = true
		w.live[nd.id] = nd
	}
	return w
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
