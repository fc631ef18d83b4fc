package policy

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"tailscale.com/tailcfg"
)

// electionPolicy: alice reaches the subnet directly, bob only via the
// tag:via routers, carol only the routers' own addresses (she sees them
// but no route through them).
const electionPolicy = `{
	"tagOwners": {"tag:r": ["alice@example.com"], "tag:via": ["alice@example.com"]},
	"grants": [
		{"src": ["alice@example.com"], "dst": ["10.1.0.0/16"], "ip": ["*"]},
		{"src": ["bob@example.com"], "dst": ["10.1.0.0/16"], "ip": ["*"], "via": ["tag:via"]},
		{"src": ["carol@example.org"], "dst": ["tag:r", "tag:via"], "ip": ["tcp:22"]},
	],
}`

var electSubnet = netip.MustParsePrefix("10.1.0.0/16")

// electionNodes: routers 1-4 serve 10.1.0.0/16 and registered in the
// order 3, 1, 4, 2 (so IDs do not give the order); 3 and 4 are tag:via.
// 10, 11 and 12 are alice's, bob's and carol's devices.
func electionNodes() []Node {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	router := func(id tailcfg.NodeID, tag string, minute int) Node {
		return Node{ID: id, Tags: []string{tag}, IPv4: netip.AddrFrom4([4]byte{100, 64, 0, byte(id)}),
			RoutableIPs: []netip.Prefix{electSubnet}, ApprovedRoutes: []netip.Prefix{electSubnet},
			Created: t0.Add(time.Duration(minute) * time.Minute)}
	}
	return []Node{
		router(1, "tag:r", 2), router(2, "tag:r", 4), router(3, "tag:via", 1), router(4, "tag:via", 3),
		{ID: 10, User: "alice@example.com", IPv4: netip.MustParseAddr("100.64.0.10"), Created: t0},
		{ID: 11, User: "bob@example.com", IPv4: netip.MustParseAddr("100.64.0.11"), Created: t0},
		{ID: 12, User: "carol@example.org", IPv4: netip.MustParseAddr("100.64.0.12"), Created: t0},
	}
}

// electionStep is one change to the inventory and what the elections must
// give after it.
type electionStep struct {
	name   string
	change func(ns []Node) // applied to the previous step's inventory
	// restart evaluates afresh, continuing from the previous Result's
	// Primaries as a server restoring them would; fresh drops them too.
	restart, fresh bool
	primary        tailcfg.NodeID // the subnet's primary, as alice sees it
	via            tailcfg.NodeID // the router bob reaches the subnet through
	// affected, when not nil, is what Update must report (restarts report
	// nothing).
	affected []tailcfg.NodeID
}

func setOffline(offline bool, ids ...tailcfg.NodeID) func([]Node) {
	return func(ns []Node) {
		for i := range ns {
			if slices.Contains(ids, ns[i].ID) {
				ns[i].Offline = offline
			}
		}
	}
}

func setApproved(routes []netip.Prefix, ids ...tailcfg.NodeID) func([]Node) {
	return func(ns []Node) {
		for i := range ns {
			if slices.Contains(ids, ns[i].ID) {
				ns[i].ApprovedRoutes = routes
			}
		}
	}
}

// TestElection walks through registrations, failures, returns, restarts
// and approval changes, checking the primary peers route through, the
// router a via grant uses, and which views Update reports.
func TestElection(t *testing.T) {
	p, diags := Compile(load(t, electionPolicy))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	steps := []electionStep{
		{name: "first registered wins", change: func([]Node) {}, fresh: true, primary: 3, via: 3},
		{name: "a standby going offline changes nothing", change: setOffline(true, 2), primary: 3, via: 3,
			affected: []tailcfg.NodeID{}},
		{name: "failover to the next registered online router", change: setOffline(true, 3), primary: 1, via: 4,
			affected: []tailcfg.NodeID{1, 3, 4, 10, 11}},
		{name: "no take-back when the old primary returns", change: setOffline(false, 3), primary: 1, via: 4,
			affected: []tailcfg.NodeID{}},
		{name: "a standby returning changes nothing", change: setOffline(false, 2), primary: 1, via: 4,
			affected: []tailcfg.NodeID{}},
		{name: "a restart keeps the primaries", change: func([]Node) {}, restart: true, primary: 1, via: 4},
		{name: "without the previous primaries the first registered wins", change: func([]Node) {}, fresh: true, primary: 3, via: 3},
		// A changed node's peers (carol) are always resent.
		{name: "losing the approval loses the primaries", change: setApproved(nil, 3), primary: 1, via: 4,
			affected: []tailcfg.NodeID{1, 3, 4, 10, 11, 12}},
		{name: "approved again, no take-back", change: setApproved([]netip.Prefix{electSubnet}, 3), primary: 1, via: 4},
		{name: "every router offline: the primaries keep the subnet", change: setOffline(true, 1, 2, 3, 4), primary: 1, via: 4,
			affected: []tailcfg.NodeID{}},
		{name: "the first router back online takes over", change: setOffline(false, 2), primary: 2, via: 4},
		{name: "a via router back online takes over the via election", change: setOffline(false, 3), primary: 2, via: 3},
		{name: "restart after the failovers", change: func([]Node) {}, restart: true, primary: 2, via: 3},
	}
	nodes := electionNodes()
	var res *Result
	for _, st := range steps {
		st.change(nodes)
		var affected []tailcfg.NodeID
		switch {
		case st.fresh:
			res = p.Evaluate(nodes, Options{})
		case st.restart:
			res = p.Evaluate(nodes, Options{Primaries: res.Primaries()})
		default:
			for _, n := range nodes {
				res.Node(n.ID) // every view cached, as a server has them
			}
			res, affected = res.Update(slices.Clone(nodes))
			if affected == nil {
				affected = []tailcfg.NodeID{}
			}
		}
		want := Primaries{
			{Prefix: electSubnet}:                 st.primary,
			{Prefix: electSubnet, Via: "tag:via"}: st.via,
		}
		if diff := cmp.Diff(want, res.Primaries()); diff != "" {
			t.Errorf("%s: Primaries (-want +got):\n%s", st.name, diff)
		}
		got := electionRoutes(res)
		wantRoutes := map[string]tailcfg.NodeID{"alice": st.primary, "bob": st.via, "self": st.primary}
		if diff := cmp.Diff(wantRoutes, got); diff != "" {
			t.Errorf("%s: who routes 10.1.0.0/16 (-want +got):\n%s", st.name, diff)
		}
		if st.affected != nil {
			if diff := cmp.Diff(st.affected, affected); diff != "" {
				t.Errorf("%s: Update's affected views (-want +got):\n%s", st.name, diff)
			}
		}
	}
}

// electionRoutes returns the router alice's and bob's views route the
// subnet through, and the router whose own view holds it as primary;
// 0 for none, -1 for several. carol must never get it.
func electionRoutes(res *Result) map[string]tailcfg.NodeID {
	out := map[string]tailcfg.NodeID{}
	note := func(who string, id tailcfg.NodeID) {
		if _, dup := out[who]; dup {
			id = -1
		}
		out[who] = id
	}
	for who, id := range map[string]tailcfg.NodeID{"alice": 10, "bob": 11, "carol": 12} {
		for _, peer := range res.Peers(id) {
			if slices.Contains(peer.PrimaryRoutes, electSubnet) {
				note(who, peer.ID)
			}
		}
	}
	for _, id := range []tailcfg.NodeID{1, 2, 3, 4} {
		if slices.Contains(res.Node(id).PrimaryRoutes, electSubnet) {
			note("self", id)
		}
	}
	for _, who := range []string{"alice", "bob", "self"} {
		if _, ok := out[who]; !ok {
			out[who] = 0
		}
	}
	return out
}

// TestElectionStandbyRouter: a router of a subnet that is not its primary
// routes the subnet through the primary when it sees it, even without a
// rule for the subnet; the primary does not route through a standby.
func TestElectionStandbyRouter(t *testing.T) {
	p, diags := Compile(load(t, `{
		"tagOwners": {"tag:r": ["alice@example.com"]},
		"grants": [{"src": ["tag:r"], "dst": ["tag:r"], "ip": ["*"]}],
	}`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	nodes := electionNodes()[:2] // 1 registered before 2
	for i := range nodes {
		nodes[i].Tags = []string{"tag:r"}
	}
	res := p.Evaluate(nodes, Options{})
	routes := func(id tailcfg.NodeID) map[tailcfg.NodeID][]netip.Prefix {
		out := map[tailcfg.NodeID][]netip.Prefix{}
		for _, peer := range res.Peers(id) {
			out[peer.ID] = peer.PrimaryRoutes
		}
		return out
	}
	eq := cmpopts.EquateComparable(netip.Prefix{})
	if diff := cmp.Diff(map[tailcfg.NodeID][]netip.Prefix{1: {electSubnet}}, routes(2), eq); diff != "" {
		t.Errorf("standby's peers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[tailcfg.NodeID][]netip.Prefix{2: nil}, routes(1), eq); diff != "" {
		t.Errorf("primary's peers (-want +got):\n%s", diff)
	}
}

// TestElectionPrimariesInput: Options.Primaries entries that no longer
// apply (unknown nodes, routers without the route, keys of no election)
// are ignored, and the caller's map is not kept.
func TestElectionPrimariesInput(t *testing.T) {
	p, diags := Compile(load(t, electionPolicy))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	other := netip.MustParsePrefix("10.9.0.0/16")
	tests := []struct {
		name      string
		prev      Primaries
		want, via tailcfg.NodeID
	}{
		{"unknown node", Primaries{{Prefix: electSubnet}: 99}, 3, 3},
		{"a client, not a router", Primaries{{Prefix: electSubnet}: 10}, 3, 3},
		{"a router outside the via tags", Primaries{{Prefix: electSubnet, Via: "tag:via"}: 1}, 3, 3},
		{"an election that no longer exists", Primaries{{Prefix: other}: 1, {Prefix: electSubnet, Via: "tag:gone"}: 1}, 3, 3},
		{"a valid previous choice", Primaries{{Prefix: electSubnet}: 2, {Prefix: electSubnet, Via: "tag:via"}: 4}, 2, 4},
		{"a fresh via election prefers the subnet's primary", Primaries{{Prefix: electSubnet}: 4}, 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := maps.Clone(tt.prev)
			res := p.Evaluate(electionNodes(), Options{Primaries: prev})
			prev[PrimaryKey{Prefix: electSubnet}] = 1 // must not reach res
			want := Primaries{{Prefix: electSubnet}: tt.want, {Prefix: electSubnet, Via: "tag:via"}: tt.via}
			if diff := cmp.Diff(want, res.Primaries()); diff != "" {
				t.Errorf("Primaries (-want +got):\n%s", diff)
			}
			upd, _ := res.Update(electionNodes())
			if diff := cmp.Diff(want, upd.Primaries()); diff != "" {
				t.Errorf("after a no-op Update, Primaries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPrimaryKeyString(t *testing.T) {
	for k, want := range map[PrimaryKey]string{
		{Prefix: electSubnet}:                     "10.1.0.0/16",
		{Prefix: electSubnet, Via: "tag:a,tag:b"}: "10.1.0.0/16 via tag:a,tag:b",
	} {
		if got := k.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", k, got, want)
		}
	}
}
