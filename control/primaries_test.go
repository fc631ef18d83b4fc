package control

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/policy"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
)

// TestPrimaryRouterStickyAcrossRestart: of two routers of one subnet the
// first registered is primary; when it goes offline the other takes over
// and keeps the subnet when the first returns; and a restart of the server
// keeps that choice although the other router registered first.
func TestPrimaryRouterStickyAcrossRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	tn := testTailnet()
	ts := startServer(t, tn, dir)
	subnet := netip.MustParsePrefix("192.0.2.0/24")
	mapReq := func(n *rawNode) *tailcfg.MapRequest {
		req := n.mapReq(true)
		req.Hostinfo.RequestTags = []string{"tag:router"}
		req.Hostinfo.RoutableIPs = []netip.Prefix{subnet}
		return req
	}
	router := func(host string) *rawNode { return registerRouter(t, ts, host, subnet) }
	r1 := router("r1")
	r2 := router("r2")
	r1ctx, r1gone := context.WithCancel(ctx)
	r1.stream(r1ctx, mapReq(r1)).next()
	r2.stream(ctx, mapReq(r2)).next()
	alice := newRawNode(t, ts)
	alice.register(alice.registerReq(aliceKey))
	wantPrimary(t, "with both routers online", ts, alice, subnet, "r1")

	s := alice.stream(ctx, alice.mapReq(true))
	primaries := map[string]bool{}
	note := func(nodes []*tailcfg.Node) {
		for _, p := range nodes {
			primaries[strings.TrimSuffix(p.Name, ".tail.test.")] = slices.Contains(p.PrimaryRoutes, subnet)
		}
	}
	note(s.next().Peers)
	r1gone()
	for primaries["r1"] || !primaries["r2"] {
		note(s.next().PeersChanged)
	}
	wantPrimary(t, "with r1 offline", ts, alice, subnet, "r2")

	r1.stream(ctx, mapReq(r1)).next() // r1 is online once its first netmap arrives
	wantPrimary(t, "after r1 came back", ts, alice, subnet, "r2")

	ts.Close()
	ts.DERP.Close()
	ts.Store.Close()
	ts2 := startServer(t, tn, dir)
	alice2 := (&rawNode{t: t, mk: alice.mk, nk: alice.nk, dk: alice.dk}).connect(ts2)
	wantPrimary(t, "after the restart, both routers offline", ts2, alice2, subnet, "r2")
	r2b := (&rawNode{t: t, mk: r2.mk, nk: r2.nk, dk: r2.dk}).connect(ts2)
	r2b.stream(ctx, mapReq(r2b)).next()
	r1b := (&rawNode{t: t, mk: r1.mk, nk: r1.nk, dk: r1.dk}).connect(ts2)
	r1b.stream(ctx, mapReq(r1b)).next()
	wantPrimary(t, "after the restart, both routers back", ts2, alice2, subnet, "r2")
}

// wantPrimary checks that the server elected the router named want for
// subnet, and that viewer's netmap routes subnet through it alone.
func wantPrimary(t *testing.T, when string, ts *testServer, viewer *rawNode, subnet netip.Prefix, want string) {
	t.Helper()
	var elected string
	ts.do(context.Background(), func(w *world) error {
		if n := w.nodes[w.res.Primaries()[policy.PrimaryKey{Prefix: subnet}]]; n != nil {
			elected = n.givenName
		}
		return nil
	})
	if elected != want {
		t.Errorf("%s: the server elected %q for %v, want %q", when, elected, subnet, want)
	}
	var routing []string
	for _, p := range viewer.selfMap().Peers {
		if slices.Contains(p.PrimaryRoutes, subnet) {
			routing = append(routing, strings.TrimSuffix(p.Name, ".tail.test."))
		}
	}
	if diff := cmp.Diff([]string{want}, routing); diff != "" {
		t.Errorf("%s: peers primary for %v in the netmap (-want +got):\n%s", when, subnet, diff)
	}
}

func TestPrimariesStoreConversion(t *testing.T) {
	p := policy.Primaries{
		{Prefix: netip.MustParsePrefix("10.0.0.0/24")}:                     2,
		{Prefix: netip.MustParsePrefix("10.0.0.0/24"), Via: "tag:a,tag:b"}: 3,
		{Prefix: netip.MustParsePrefix("fd00::/64")}:                       4,
	}
	rows := primariesToStore(p)
	var logged []string
	logf := func(format string, args ...any) { logged = append(logged, format) }
	if diff := cmp.Diff(p, primariesFromStore(rows, logf)); diff != "" {
		t.Errorf("round trip through store rows (-want +got):\n%s", diff)
	}
	rows = append(rows, store.PrimaryRoute{Prefix: "not-a-prefix", NodeID: 9})
	if diff := cmp.Diff(p, primariesFromStore(rows, logf)); diff != "" {
		t.Errorf("with a bad row (-want +got):\n%s", diff)
	}
	if len(logged) != 1 {
		t.Errorf("logged %d lines for one bad row, want 1", len(logged))
	}
}

// restartServer closes ts and starts a server on its state directory
// with the router settings rh.
func restartServer(t *testing.T, ts *testServer, rh RouterHealth) *testServer {
	t.Helper()
	ts.Close()
	ts.DERP.Close()
	ts.Store.Close()
	return startServerWith(t, testTailnet(), ts.dir, func(c *Config) { c.RouterHealth = rh })
}

// After a restart the saved primary keeps its subnet for the grace period
// although the standby reconnects first; a primary that reconnected is
// judged by its stream again; one that has not reconnected when the grace
// ends fails over.
func TestPrimaryGraceAfterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	subnet := netip.MustParsePrefix("192.0.2.0/24")
	noPings := RouterHealth{Interval: -1, RestartGrace: -1}
	ts := startServerWith(t, testTailnet(), "", func(c *Config) { c.RouterHealth = noPings })
	r1 := registerRouter(t, ts, "r1", subnet)
	r2 := registerRouter(t, ts, "r2", subnet)
	alice := newRawNode(t, ts)
	alice.register(alice.registerReq(aliceKey))
	r1.stream(ctx, routerMapReq(r1, subnet)).next()
	r2.stream(ctx, routerMapReq(r2, subnet)).next()
	wantPrimary(t, "before the restart", ts, alice, subnet, "r1")

	reconnect := func(ts *testServer, n *rawNode) context.CancelFunc {
		t.Helper()
		sctx, gone := context.WithCancel(ctx)
		(&rawNode{t: t, mk: n.mk, nk: n.nk, dk: n.dk}).connect(ts).stream(sctx, routerMapReq(n, subnet)).next()
		return gone
	}
	viewer := func(ts *testServer) *rawNode {
		return (&rawNode{t: t, mk: alice.mk, nk: alice.nk, dk: alice.dk}).connect(ts)
	}

	ts = restartServer(t, ts, RouterHealth{Interval: -1, RestartGrace: time.Hour})
	reconnect(ts, r2)
	wantPrimary(t, "in the grace, only the standby back", ts, viewer(ts), subnet, "r1")
	r1gone := reconnect(ts, r1)
	wantPrimary(t, "in the grace, both back", ts, viewer(ts), subnet, "r1")
	r1gone()
	testkit.WaitFor(t, ctx, "r2 to take over from r1, which reconnected and left again", func() (bool, string) {
		got, _, _ := electedFor(ts, subnet)
		return got == "r2", got + " is elected"
	})

	// r2 is the saved primary now; r1 comes back first.
	ts = restartServer(t, ts, RouterHealth{Interval: -1, RestartGrace: time.Hour})
	reconnect(ts, r1)
	wantPrimary(t, "second restart, in the grace", ts, viewer(ts), subnet, "r2")
	ts.do(ctx, func(w *world) error { w.endGrace(); return nil }) // as the grace's timer does
	wantPrimary(t, "second restart, after the grace", ts, viewer(ts), subnet, "r1")

	// The grace's timer ends it by itself.
	ts = restartServer(t, ts, RouterHealth{Interval: -1, RestartGrace: 200 * time.Millisecond})
	reconnect(ts, r2)
	testkit.WaitFor(t, ctx, "the grace to end and r2 to take over", func() (bool, string) {
		var waiting int
		ts.do(ctx, func(w *world) error { waiting = len(w.graceFor); return nil })
		got, _, _ := electedFor(ts, subnet)
		return waiting == 0 && got == "r2", fmt.Sprintf("%s is elected, the grace covers %d routers", got, waiting)
	})
}
