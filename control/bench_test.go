package control

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/util/zstdframe"
)

// benchWorld builds a world of n registered nodes, all with live sessions,
// without a database or network.
func benchWorld(b testing.TB, n int) *world { return benchWorldWith(b, n, testTailnet(), nil, nil) }

// benchWorldIn is benchWorld with the nodes saved in st first, when st is
// not nil, and st as the server's store.
func benchWorldIn(b testing.TB, n int, st *store.Store) *world {
	return benchWorldWith(b, n, testTailnet(), nil, st)
}

// benchWorldOf is benchWorld serving tn, with node i tagged tags(i) (nil:
// no tags).
func benchWorldOf(b testing.TB, n int, tn *schema.Tailnet, tags func(i int) []string) *world {
	return benchWorldWith(b, n, tn, tags, nil)
}

// benchWorldWith is benchWorldOf with benchWorldIn's store.
func benchWorldWith(b testing.TB, n int, tn *schema.Tailnet, tags func(i int) []string, st *store.Store) *world {
	b.Helper()
	srv := &Server{now: time.Now, logf: func(string, ...any) {}, derpMap: &tailcfg.DERPMap{}, relay: newRelayAdmission(time.Now), store: st}
	rows := make([]*store.Node, n)
	base := netip.MustParseAddr("100.64.0.0")
	for i := range rows {
		base = base.Next()
		rows[i] = &store.Node{
			ID: int64(i + 1), StableID: fmt.Sprintf("n%d", i), MachineKey: key.NewMachine().Public().String(),
			NodeKey: key.NewNode().Public().String(), GivenName: fmt.Sprintf("node-%d", i), UserLogin: "alice@example.com",
			IPv4: base.String(), CreatedAt: time.Now(),
		}
		if tags != nil {
			rows[i].Tags = tags(i)
		}
	}
	if st != nil {
		saveBenchRows(b, st, rows)
	}
	c, err := srv.Prepare(tn)
	if err != nil {
		b.Fatal(err)
	}
	w, err := newWorld(context.Background(), srv, c, rows, nil)
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

// BenchmarkEndpointChange measures the owner's work when one node of a
// 10,000-node tailnet reports new endpoints: one patch per live peer.
func BenchmarkEndpointChange(b *testing.B) {
	w := benchWorld(b, 10_000)
	n := w.nodes[1]
	req := &tailcfg.MapRequest{Version: tailcfg.CurrentCapabilityVersion, NodeKey: n.nodeKey}
	b.ResetTimer()
	for i := range b.N {
		req.Endpoints = []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(i))}
		w.applyMapRequest(n, req)
		b.StopTimer() // the sessions drain their queues on their own goroutines
		for _, p := range w.live {
			p.sess.take()
		}
		b.StartTimer()
	}
}

// BenchmarkDeltaMessage measures a session turning a drained queue with
// one patch into an encoded, compressed frame.
func BenchmarkDeltaMessage(b *testing.B) {
	w := benchWorld(b, 100)
	sess := w.nodes[2].sess
	on := true
	b.ResetTimer()
	for i := range b.N {
		sess.enqueuePatch(&tailcfg.PeerChange{NodeID: 1, Online: &on, DERPRegion: i%10 + 1}, w.nodes[1].view)
		resp := w.srv.deltaMap(sess.take())
		j, _ := w.srv.views.encodeMap(nil, resp)
		zstdframe.AppendEncode(nil, j, zstdframe.FastestCompression)
	}
}

// BenchmarkFullMap measures building and encoding one full netmap with
// 10,000 peers (what a connecting node costs).
func BenchmarkFullMap(b *testing.B) {
	w := benchWorld(b, 10_000)
	n := w.nodes[1]
	b.ResetTimer()
	for range b.N {
		resp := w.fullMap(n, true)
		j, _ := w.srv.views.encodeMap(nil, resp)
		zstdframe.AppendEncode(nil, j, zstdframe.FastestCompression)
	}
}

// BenchmarkRegister measures registering a node with an auth key,
// including the SQLite transaction.
func BenchmarkRegister(b *testing.B) {
	ts := startServer(b, testTailnet(), "")
	mk := key.NewMachine().Public()
	b.ResetTimer()
	for i := range b.N {
		req := &tailcfg.RegisterRequest{Version: tailcfg.CurrentCapabilityVersion, NodeKey: key.NewNode().Public(),
			Auth: &tailcfg.RegisterResponseAuth{AuthKey: aliceKey}, Hostinfo: &tailcfg.Hostinfo{Hostname: fmt.Sprint("h", i)}}
		if r := ts.register(b.Context(), mk, req); r.Error != "" {
			b.Fatal(r.Error)
		}
	}
}

// BenchmarkMembershipChange measures a node leaving or joining a 10,000-node tailnet
// with 10,000 connected nodes under the default allow-all policy. "owner"
// is the owner goroutine's share (policy update, one enqueue per affected
// node); "with-sessions" adds the sessions' filter checks, which run on
// their own goroutines.
func BenchmarkMembershipChange(b *testing.B) {
	for _, withSessions := range []bool{false, true} {
		name := "owner"
		if withSessions {
			name = "with-sessions"
		}
		b.Run(name, func(b *testing.B) {
			w := benchWorld(b, 10_000)
			n := w.nodes[1]
			b.ResetTimer()
			for range b.N {
				// The node alternately logs out and back in: a real change
				// of the inventory every iteration.
				n.loggedOut = !n.loggedOut
				w.membershipChanged(n, false)
				if !withSessions {
					b.StopTimer()
				}
				for _, p := range w.live {
					p.sess.take()
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkConfigChange measures the work for a new config under the
// default allow-all policy, where every node sees every other. "install"
// is the one step that blocks the owner goroutine: installing the config
// and refreshing every node's own view (which builds no peer lists).
// "netmaps" adds the full netmap every connected session then builds off
// the owner goroutine (snapshotMap, as poll.go does; the owner's share is
// only the session's reset), peer lists included; encoding is left out.
func BenchmarkConfigChange(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		for _, netmaps := range []bool{false, true} {
			name := fmt.Sprintf("nodes=%d/install", n)
			if netmaps {
				name = fmt.Sprintf("nodes=%d/netmaps", n)
			}
			b.Run(name, func(b *testing.B) {
				w := benchWorld(b, n)
				c, err := w.srv.Prepare(testTailnet())
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					w.setTailnet(c)
					w.everythingChanged()
					for id, p := range w.live {
						p.sess.take()
						if netmaps {
							p.sess.resetForFull(nil, nil)
							if w.srv.snapshotMap(p.sess, id) == nil {
								b.Fatalf("node %d: no netmap", id)
							}
						}
					}
				}
			})
		}
	}
}
