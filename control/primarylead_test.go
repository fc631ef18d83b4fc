package control

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/policy"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
)

// savedPrimary returns the router the store holds as primary for subnet,
// by name ("" for none).
func savedPrimary(ctx context.Context, ts *testServer, subnet netip.Prefix) string {
	rows, err := ts.Store.PrimaryRoutes(ctx)
	if err != nil {
		return err.Error()
	}
	for _, r := range rows {
		if r.Prefix == subnet.String() && r.Via == "" {
			var name string
			ts.do(ctx, func(w *world) error {
				if n := w.nodes[tailcfg.NodeID(r.NodeID)]; n != nil {
					name = n.givenName
				}
				return nil
			})
			return name
		}
	}
	return ""
}

// TestFollowPrimaries: a server following another replica's outcome
// hands out that outcome's primary, whatever it would elect itself, and
// saves nothing; installing the same outcome again re-evaluates nothing;
// a router of the outcome going offline stays primary until the decider
// says otherwise; a server that takes over deciding continues from the
// outcome it followed (no move while its primary is online), saves it at
// once, and fails over from it by itself; an outcome naming no election
// leaves it to the usual sticky election.
func TestFollowPrimaries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	subnet := netip.MustParsePrefix("192.0.2.0/24")
	ts := startServerWith(t, testTailnet(), "", func(c *Config) { c.RouterHealth = RouterHealth{Interval: -1, RestartGrace: -1} })
	r1, r2 := registerRouter(t, ts, "r1", subnet), registerRouter(t, ts, "r2", subnet) // r1 registered first
	r1ctx, r1gone := context.WithCancel(ctx)
	r1.stream(r1ctx, routerMapReq(r1, subnet)).next()
	r2.stream(ctx, routerMapReq(r2, subnet)).next()
	alice := newRawNode(t, ts)
	alice.register(alice.registerReq(aliceKey))
	ids := map[string]int64{}
	ts.do(ctx, func(w *world) error {
		ids["r1"], ids["r2"] = int64(w.names["r1"].id), int64(w.names["r2"].id)
		return nil
	})
	follow := func(name string) func() error {
		return func() error {
			var rows []store.PrimaryRoute
			if name != "" {
				rows = []store.PrimaryRoute{{Prefix: subnet.String(), NodeID: ids[name]}}
			}
			return ts.FollowPrimaries(ctx, rows)
		}
	}
	var res *policy.Result // the Result before the step, for sameResult
	steps := []struct {
		what       string
		do         func() error
		want       string // elected and in alice's netmap
		saved      string // in the store
		sameResult bool   // the step re-evaluated nothing
	}{
		{"deciding: the first registered", func() error { return nil }, "r1", "r1", true},
		{"following another replica's r2", follow("r2"), "r2", "r1", false},
		{"the same outcome again", follow("r2"), "r2", "r1", true},
		{"taking over while r2 is online: no move", func() error { return ts.DecidePrimaries(ctx) }, "r2", "r2", false},
		{"following r1", follow("r1"), "r1", "r2", false},
		{"r1 offline: the follower does not fail it over", func() error {
			r1gone()
			testkit.WaitFor(t, ctx, "r1 offline", func() (bool, string) {
				st := routerState(ts, "r1")
				return st == "online false, unhealthy false, 0 misses", st
			})
			return nil
		}, "r1", "r2", false},
		{"taking over: r1 offline fails over", func() error { return ts.DecidePrimaries(ctx) }, "r2", "r2", false},
		{"following an outcome without the election: sticky", follow(""), "r2", "r2", false},
	}
	for _, st := range steps {
		ts.do(ctx, func(w *world) error { res = w.res; return nil })
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		wantPrimary(t, st.what, ts, alice, subnet, st.want)
		testkit.WaitFor(t, ctx, st.what+": "+st.saved+" saved", func() (bool, string) {
			got := savedPrimary(ctx, ts, subnet)
			return got == st.saved, got + " is saved"
		})
		if st.sameResult {
			var same bool
			ts.do(ctx, func(w *world) error { same = w.res == res; return nil })
			if !same {
				t.Errorf("%s: the policy was evaluated again", st.what)
			}
		}
	}
}

// TestRemoteRouterHealth: the health of a router streaming to another
// replica comes with its runtime; the deciding server fails an unhealthy
// one over and, sticky, does not move back when it is healthy again.
func TestRemoteRouterHealth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	subnet := netip.MustParsePrefix("192.0.2.0/24")
	ts := startServerWith(t, testTailnet(), "", func(c *Config) { c.RouterHealth = RouterHealth{Interval: -1, RestartGrace: -1} })
	registerRouter(t, ts, "remote", subnet) // registered first; streams to replica "rB"
	local := registerRouter(t, ts, "local", subnet)
	var id tailcfg.NodeID
	ts.do(ctx, func(w *world) error { id = w.names["remote"].id; return nil })
	if err := ts.RemoteRuntime(ctx, "rB", []RuntimeState{{ID: id, Online: true}}); err != nil {
		t.Fatal(err)
	}
	local.stream(ctx, routerMapReq(local, subnet)).next()
	alice := newRawNode(t, ts)
	alice.register(alice.registerReq(aliceKey))
	steps := []struct {
		what  string
		state RuntimeState
		want  string
	}{
		{"online on rB, healthy", RuntimeState{ID: id, Online: true}, "remote"},
		{"unhealthy on rB", RuntimeState{ID: id, Online: true, Unhealthy: true}, "local"},
		{"healthy again", RuntimeState{ID: id, Online: true}, "local"},
	}
	for _, st := range steps {
		if err := ts.RemoteRuntime(ctx, "rB", []RuntimeState{st.state}); err != nil {
			t.Fatal(err)
		}
		wantPrimary(t, st.what, ts, alice, subnet, st.want)
		if rs := routerState(ts, "remote"); rs != fmt.Sprintf("online true, unhealthy %v, 0 misses", st.state.Unhealthy) {
			t.Errorf("%s: the remote router is %s", st.what, rs)
		}
	}
}

// TestRouterHealthFannedOut: a router failing its health checks here is
// published to the other replicas as unhealthy, and as healthy once it
// answers again.
func TestRouterHealthFannedOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	subnet := netip.MustParsePrefix("192.0.2.0/24")
	published := make(chan RuntimeState, 1000)
	ts := startServerWith(t, testTailnet(), "", func(c *Config) {
		c.RouterHealth = RouterHealth{Interval: 300 * time.Millisecond, Misses: 2, RestartGrace: -1}
		c.Fanout = func(st RuntimeState) { published <- st }
	})
	r := registerRouter(t, ts, "r1", subnet)
	s := r.stream(ctx, routerMapReq(r, subnet))
	s.next()
	a := answerPings(ctx, r, s)
	var id tailcfg.NodeID
	ts.do(ctx, func(w *world) error { id = w.names["r1"].id; return nil })
	waitPublished := func(unhealthy bool) {
		t.Helper()
		for {
			select {
			case st := <-published:
				if st.ID == id && st.Unhealthy == unhealthy {
					if !st.Online {
						t.Errorf("r1 published offline with unhealthy %v; its stream is up", unhealthy)
					}
					return
				}
			case <-ctx.Done():
				t.Fatalf("r1 was never published with unhealthy %v", unhealthy)
			}
		}
	}
	a.answering.Store(false)
	waitPublished(true)
	a.answering.Store(true)
	waitPublished(false)
}

// TestRemoteRouterEndsGrace: after a restart, a saved primary that comes
// back on another replica is judged by what that replica says from then
// on, as one reconnecting here is by its stream: when it goes offline
// there, it fails over without waiting for the grace to end.
func TestRemoteRouterEndsGrace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	subnet := netip.MustParsePrefix("192.0.2.0/24")
	ts := startServerWith(t, testTailnet(), "", func(c *Config) { c.RouterHealth = RouterHealth{Interval: -1, RestartGrace: -1} })
	r1, r2 := registerRouter(t, ts, "r1", subnet), registerRouter(t, ts, "r2", subnet)
	r1.stream(ctx, routerMapReq(r1, subnet)).next()
	alice := newRawNode(t, ts)
	alice.register(alice.registerReq(aliceKey))
	wantPrimary(t, "before the restart", ts, alice, subnet, "r1")
	testkit.WaitFor(t, ctx, "r1 saved", func() (bool, string) {
		got := savedPrimary(ctx, ts, subnet)
		return got == "r1", got + " is saved"
	})

	ts = restartServer(t, ts, RouterHealth{Interval: -1, RestartGrace: time.Hour})
	(&rawNode{t: t, mk: r2.mk, nk: r2.nk, dk: r2.dk}).connect(ts).stream(ctx, routerMapReq(r2, subnet)).next()
	viewer := (&rawNode{t: t, mk: alice.mk, nk: alice.nk, dk: alice.dk}).connect(ts)
	wantPrimary(t, "in the grace, only the standby back", ts, viewer, subnet, "r1")
	var id tailcfg.NodeID
	ts.do(ctx, func(w *world) error { id = w.names["r1"].id; return nil })
	for _, st := range []struct {
		what   string
		online bool
		want   string
	}{
		{"r1 back on replica rB", true, "r1"},
		{"r1 gone from rB, in the grace", false, "r2"},
	} {
		if err := ts.RemoteRuntime(ctx, "rB", []RuntimeState{{ID: id, Online: st.online}}); err != nil {
			t.Fatal(err)
		}
		wantPrimary(t, st.what, ts, viewer, subnet, st.want)
	}
}
