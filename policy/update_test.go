package policy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"tailscale.com/tailcfg"

	"github.com/tailplane/tailplane/schema"
)

// TestUpdateMatchesEvaluate applies single-node changes with Update and
// checks every node's view against a fresh Evaluate that continues from the
// same elections (Options.Primaries): a view Update carries over must be
// the one Evaluate computes.
func TestUpdateMatchesEvaluate(t *testing.T) {
	bt, bnodes := benchTailnet(300)
	inventories := []struct {
		name  string
		doc   func(t *testing.T) *Policy
		nodes []Node
	}{
		{"small", func(t *testing.T) *Policy { p, _ := Compile(load(t, smallPolicy)); return p }, smallNodes()},
		{"bench300", func(t *testing.T) *Policy { p, _ := Compile(bt); return p }, bnodes},
		{"ssh", func(t *testing.T) *Policy {
			p, diags := Compile(load(t, sshUpdatePolicy))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			return p
		}, smallNodes()},
		{"via", func(t *testing.T) *Policy {
			p, diags := Compile(load(t, viaUpdatePolicy))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			return p
		}, smallNodes()},
	}
	mutations := []struct {
		name string
		f    func([]Node) []Node
	}{
		{"retag", func(ns []Node) []Node { ns[1].Tags, ns[1].User = []string{"tag:web"}, ""; return ns }},
		{"untag", func(ns []Node) []Node { ns[3].Tags, ns[3].User = nil, "bob@example.com"; return ns }},
		{"new ip", func(ns []Node) []Node { ns[2].IPv4 = netip.MustParseAddr("100.100.1.1"); return ns }},
		{"remove", func(ns []Node) []Node { return slices.Delete(ns, 2, 3) }},
		{"add", func(ns []Node) []Node {
			return append(ns, Node{ID: 5000, User: "alice@example.com", IPv4: netip.MustParseAddr("100.99.0.1"), IPv6: netip.MustParseAddr("fd7a:115c:a1e0::99:1")})
		}},
		{"approve route", func(ns []Node) []Node {
			r := netip.MustParsePrefix("192.168.1.0/24")
			ns[4].RoutableIPs, ns[4].ApprovedRoutes = []netip.Prefix{r}, []netip.Prefix{r}
			return ns
		}},
		{"router goes offline", func(ns []Node) []Node {
			ns[slices.IndexFunc(ns, func(n Node) bool { return len(n.ApprovedRoutes) > 0 })].Offline = true
			return ns
		}},
		{"client goes offline", func(ns []Node) []Node {
			ns[slices.IndexFunc(ns, func(n Node) bool { return len(n.ApprovedRoutes) == 0 })].Offline = true
			return ns
		}},
		{"two routers for one subnet", func(ns []Node) []Node {
			r := netip.MustParsePrefix("192.168.1.0/24")
			for _, i := range []int{4, 5} {
				ns[i].RoutableIPs, ns[i].ApprovedRoutes = []netip.Prefix{r}, []netip.Prefix{r}
			}
			return ns
		}},
		{"tag as recorder", func(ns []Node) []Node { ns[4].Tags, ns[4].User = []string{"tag:rec"}, ""; return ns }},
		{"tag as router", func(ns []Node) []Node { ns[4].Tags, ns[4].User = []string{"tag:router"}, ""; return ns }},
		{"add recorder", func(ns []Node) []Node {
			return append(ns, Node{ID: 5001, Tags: []string{"tag:rec"}, IPv4: netip.MustParseAddr("100.99.0.2"), IPv6: netip.MustParseAddr("fd7a:115c:a1e0::99:2")})
		}},
		{"unapprove routes", func(ns []Node) []Node {
			for i := range ns {
				ns[i].ApprovedRoutes = nil
			}
			return ns
		}},
	}
	for _, inv := range inventories {
		p := inv.doc(t)
		for _, m := range mutations {
			t.Run(inv.name+"/"+m.name, func(t *testing.T) {
				before := cloneNodes(inv.nodes)
				after := m.f(cloneNodes(inv.nodes))
				old := p.Evaluate(before, Options{})
				for _, n := range before {
					old.Node(n.ID)
				}
				upd, ids := old.Update(after)
				fresh := p.Evaluate(after, Options{Primaries: old.Primaries()})
				if diff := cmp.Diff(fresh.Primaries(), upd.Primaries()); diff != "" {
					t.Errorf("Update's primaries differ from Evaluate's (-Evaluate +Update):\n%s", diff)
				}
				for _, n := range after {
					if got, want := viewJSON(upd, n.ID), viewJSON(fresh, n.ID); got != want {
						t.Errorf("node %d: Update's view differs from Evaluate's (affected: %v)\n got %s\nwant %s", n.ID, slices.Contains(ids, n.ID), got, want)
					}
					checkPeerSet(t, upd, n.ID, after)
				}
				if len(ids) == 0 && !strings.HasSuffix(m.name, "goes offline") {
					t.Error("Update reported no affected nodes")
				}
				if m.name == "client goes offline" && len(ids) != 0 {
					t.Errorf("a client going offline affected %v, want nothing", ids)
				}
			})
		}
	}
}

// sshUpdatePolicy has SSH rules whose views depend on nodes other than
// their sources and destinations: session recorders, and localpart rules
// that sources receive themselves.
const sshUpdatePolicy = `{
	"tagOwners": {"tag:db": ["alice@example.com"], "tag:web": ["alice@example.com"], "tag:rec": ["alice@example.com"], "tag:router": ["alice@example.com"]},
	"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db:22"]}],
	"ssh": [
		{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db"], "users": ["root"], "recorder": ["tag:rec"]},
		{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"], "recorder": ["tag:rec"], "enforceRecorder": true},
		{"action": "accept", "src": ["autogroup:member", "tag:web"], "dst": ["tag:web"], "users": ["localpart:*@example.com"]},
	],
}`

// viaUpdatePolicy routes a subnet and the internet through grants' via.
const viaUpdatePolicy = `{
	"groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
	"tagOwners": {"tag:db": ["alice@example.com"], "tag:web": ["alice@example.com"], "tag:router": ["alice@example.com"], "tag:rec": ["alice@example.com"]},
	"grants": [
		{"src": ["group:eng"], "dst": ["192.168.1.0/24"], "ip": ["*"], "via": ["tag:router"]},
		{"src": ["bob@example.com"], "dst": ["autogroup:internet"], "ip": ["*"], "via": ["tag:router"]},
		{"src": ["alice@example.com"], "dst": ["tag:db"], "ip": ["tcp:5432"]},
	],
}`

func cloneNodes(ns []Node) []Node {
	out := slices.Clone(ns)
	for i := range out {
		out[i].Tags = slices.Clone(out[i].Tags)
		out[i].RoutableIPs = slices.Clone(out[i].RoutableIPs)
		out[i].ApprovedRoutes = slices.Clone(out[i].ApprovedRoutes)
	}
	return out
}

// checkPeerSet checks that node id's view in res, which may have been
// carried over from an older Result, holds exactly the peers res.Peers
// lists, and answers Has for every node of the inventory and for IDs
// outside it.
func checkPeerSet(t *testing.T, res *Result, id tailcfg.NodeID, nodes []Node) {
	t.Helper()
	ps := res.Node(id).Peers
	var want []tailcfg.NodeID
	for _, p := range res.Peers(id) {
		want = append(want, p.ID)
	}
	if diff := cmp.Diff(want, ps.IDs(), cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("node %d: the view's peer set differs from Peers (-Peers +set):\n%s", id, diff)
	}
	if ps.Len() != len(want) {
		t.Fatalf("node %d: the peer set's Len is %d, want %d", id, ps.Len(), len(want))
	}
	for _, n := range append(nodes, Node{ID: 0}, Node{ID: 1 << 40}) {
		if got := ps.Has(n.ID); got != slices.Contains(want, n.ID) {
			t.Fatalf("node %d: Has(%d) = %v, want %v", id, n.ID, got, !got)
		}
	}
}

// viewJSON is node id's view in res, with its peers' routes.
func viewJSON(res *Result, id tailcfg.NodeID) string {
	v := res.Node(id)
	if v == nil {
		return "nil"
	}
	b, err := json.Marshal(struct {
		View   *NodeView
		Routes []Peer
	}{v, res.Peers(id)})
	if err != nil {
		return fmt.Sprint(err)
	}
	return string(b)
}

// BenchmarkUpdate is one node changing its tags in a tailnet whose views
// are all computed: Update plus recomputing the affected views.
func BenchmarkUpdate(b *testing.B) {
	benchUpdate(b, nil, func(i int, nodes []Node) []Node {
		nodes[7].Tags, nodes[7].User = []string{fmt.Sprintf("tag:t%d", 5+i%2)}, ""
		return slices.Clone(nodes)
	})
}

// BenchmarkUpdateNewUserNode is a small-blast-radius change: a node of a
// user who is in no group joins (and, every other op, leaves) a tailnet
// whose views are all computed. The user appears in the autogroup:member
// rules only, so the views affected are its own and those of the sources
// of the rules whose destinations include it ("*:9100"): the cost should
// follow the affected nodes, not the size of the tailnet.
func BenchmarkUpdateNewUserNode(b *testing.B) {
	const login = "loner@example.com"
	var with []Node
	benchUpdate(b, func(t *schema.Tailnet, _ []Node) {
		t.Users[login] = schema.User{Login: login, Role: schema.RoleMember}
	}, func(i int, nodes []Node) []Node {
		if with == nil || len(with) != len(nodes)+1 {
			with = append(slices.Clone(nodes), Node{ID: tailcfg.NodeID(len(nodes) + 1), Name: "loner", User: login,
				IPv4: netip.MustParseAddr("100.127.0.1"), IPv6: netip.MustParseAddr("fd7a:115c:a1e0::7f:1")})
		}
		if i%2 == 1 {
			return with
		}
		return nodes
	})
}

// benchUpdate runs Update at 1k and 10k nodes of benchTailnet (adjusted by
// tweak, when not nil), with every view computed first. change returns the
// inventory of op i (i from 1), given the original one. It reports the
// affected views and the peer entries they hold.
func benchUpdate(b *testing.B, tweak func(*schema.Tailnet, []Node), change func(i int, nodes []Node) []Node) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			t, nodes := benchTailnet(n)
			if tweak != nil {
				tweak(t, nodes)
			}
			res := evaluateAll(b, t, nodes)
			i, affected, peers := 0, 0, 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				var ids []tailcfg.NodeID
				res, ids = res.Update(change(i, nodes))
				peers = 0
				for _, id := range ids {
					if v := res.Node(id); v != nil { // nil: removed
						peers += v.Peers.Len()
					}
				}
				affected = len(ids)
			}
			b.ReportMetric(float64(affected), "affected-nodes")
			b.ReportMetric(float64(peers), "peer-entries")
		})
	}
}

// evaluateAll compiles t's policy, evaluates it against nodes and computes
// every node's view.
func evaluateAll(b *testing.B, t *schema.Tailnet, nodes []Node) *Result {
	p, diags := Compile(t)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	res := p.Evaluate(nodes, Options{})
	for _, nd := range nodes {
		res.Node(nd.ID)
	}
	return res
}

// TestUpdateRandom applies random sequences of node changes through
// Update, checking every view against a fresh Evaluate (continuing from the
// previous step's elections) after each step.
func TestUpdateRandom(t *testing.T) {
	bt, nodes := benchTailnet(200)
	p, diags := Compile(bt)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	res := p.Evaluate(nodes, Options{})
	for step := range 40 {
		nodes = cloneNodes(nodes)
		i := rng.IntN(len(nodes))
		switch rng.IntN(6) {
		case 0: // retag
			nodes[i].Tags, nodes[i].User = []string{fmt.Sprintf("tag:t%d", rng.IntN(40))}, ""
		case 1: // hand to a user
			nodes[i].Tags, nodes[i].User = nil, fmt.Sprintf("user%d@example.com", rng.IntN(40))
		case 2: // advertise and approve a subnet
			r := netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", rng.IntN(20)))
			nodes[i].RoutableIPs, nodes[i].ApprovedRoutes = []netip.Prefix{r}, []netip.Prefix{r}
		case 3: // remove
			nodes = slices.Delete(nodes, i, i+1)
		case 5: // connect or disconnect, a router every other time
			if routers := slices.IndexFunc(nodes, func(n Node) bool { return len(n.ApprovedRoutes) > 0 }); step%2 == 0 && routers >= 0 {
				i = routers + rng.IntN(len(nodes)-routers)
				for len(nodes[i].ApprovedRoutes) == 0 {
					i = (i + 1) % len(nodes)
				}
			}
			nodes[i].Offline = !nodes[i].Offline
		case 4: // add
			id := tailcfg.NodeID(10000 + step)
			nodes = append(nodes, Node{ID: id, User: fmt.Sprintf("user%d@example.com", rng.IntN(40)),
				IPv4: netip.AddrFrom4([4]byte{100, 90, 0, byte(step)}), IPv6: netip.AddrFrom16([16]byte{0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 13: 9, 15: byte(step)})})
		}
		for _, n := range nodes {
			res.Node(n.ID) // make every view cached, so Update must decide about each
		}
		prev := res.Primaries()
		res, _ = res.Update(nodes)
		fresh := p.Evaluate(nodes, Options{Primaries: prev})
		if diff := cmp.Diff(fresh.Primaries(), res.Primaries()); diff != "" {
			t.Fatalf("step %d: Update's primaries differ from Evaluate's (-Evaluate +Update):\n%s", step, diff)
		}
		for _, n := range nodes {
			if got, want := viewJSON(res, n.ID), viewJSON(fresh, n.ID); got != want {
				t.Fatalf("step %d: node %d: Update's view differs from Evaluate's", step, n.ID)
			}
			checkPeerSet(t, res, n.ID, nodes)
		}
	}
}

// BenchmarkUpdateRouterOffline is a failover between two routers of
// 10.0.0.0/16, node 0 and node 100 (which serves 10.1.0.0/16 too; at 10k
// nodes four more routers serve 10.0.0.0/16): every op takes one of the
// two offline and brings the other back, so the subnet's primary moves
// each time. Only that election changes: the views affected are the two
// routers' and those of their peers that may carry the subnet.
func BenchmarkUpdateRouterOffline(b *testing.B) {
	subnet := netip.MustParsePrefix("10.0.0.0/16")
	benchUpdate(b, func(_ *schema.Tailnet, nodes []Node) {
		nodes[100].RoutableIPs = append(slices.Clone(nodes[100].RoutableIPs), subnet)
		nodes[100].ApprovedRoutes = append(slices.Clone(nodes[100].ApprovedRoutes), subnet)
	}, func(i int, nodes []Node) []Node {
		out := slices.Clone(nodes)
		out[0].Offline, out[100].Offline = i%2 == 1, i%2 == 0
		return out
	})
}

// BenchmarkUpdateUnsortedJoin is BenchmarkUpdateNewUserNode with the
// inventory in no particular order, as a server passes it (it lists its
// nodes from a map): Update orders it itself.
func BenchmarkUpdateUnsortedJoin(b *testing.B) {
	const login = "loner@example.com"
	var with, without []Node
	benchUpdate(b, func(t *schema.Tailnet, _ []Node) {
		t.Users[login] = schema.User{Login: login, Role: schema.RoleMember}
	}, func(i int, nodes []Node) []Node {
		if with == nil || len(with) != len(nodes)+1 {
			rng := rand.New(rand.NewPCG(1, 2))
			without = slices.Clone(nodes)
			rng.Shuffle(len(without), func(i, j int) { without[i], without[j] = without[j], without[i] })
			with = append(slices.Clone(without), Node{ID: tailcfg.NodeID(len(nodes) + 1), Name: "loner", User: login,
				IPv4: netip.MustParseAddr("100.127.0.1"), IPv6: netip.MustParseAddr("fd7a:115c:a1e0::7f:1")})
			rng.Shuffle(len(with), func(i, j int) { with[i], with[j] = with[j], with[i] })
		}
		if i%2 == 1 {
			return with
		}
		return without
	})
}

// TestSortedByID checks the order Update and Evaluate index nodes in: by
// ID, and of nodes sharing an ID the first listed, whether the input is
// ordered or not.
func TestSortedByID(t *testing.T) {
	n := func(id tailcfg.NodeID, name string) Node { return Node{ID: id, Name: name} }
	tests := []struct {
		name string
		in   []Node
		want []Node
	}{
		{"empty", nil, []Node{}},
		{"ordered", []Node{n(1, "a"), n(2, "b"), n(2, "c"), n(3, "d")}, []Node{n(1, "a"), n(2, "b"), n(3, "d")}},
		{"unordered", []Node{n(3, "d"), n(2, "b"), n(1, "a"), n(2, "c"), n(3, "e")}, []Node{n(1, "a"), n(2, "b"), n(3, "d")}},
		{"unordered, sparse IDs", []Node{n(1000, "x"), n(1, "a"), n(1000, "y"), n(7, "b")}, []Node{n(1, "a"), n(7, "b"), n(1000, "x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			opts := cmp.Options{cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{})}
			if diff := cmp.Diff(tt.want, sortedByID(in), opts); diff != "" {
				t.Errorf("sortedByID (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.in, in, opts); diff != "" {
				t.Errorf("sortedByID modified its input (-before +after):\n%s", diff)
			}
		})
	}
}

// BenchmarkJoin is a registration storm's unit of work for the engine:
// one node of an existing user joins (IDs ascending, as a store hands them
// out), and the affected nodes are named; no view is recomputed (a server
// does that lazily, per session). "delta" hands UpdateNodes the joining
// node, "full" hands Update the whole inventory. "mesh" is a full mesh
// (`* -> *:*`), "bench" benchTailnet's few hundred rules.
func BenchmarkJoin(b *testing.B) {
	for _, pol := range []string{"mesh", "bench"} {
		for _, n := range []int{1000, 10000} {
			for _, mode := range []string{"delta", "full"} {
				b.Run(fmt.Sprintf("%s/nodes=%d/%s", pol, n, mode), func(b *testing.B) {
					t, nodes := benchTailnet(n)
					if pol == "mesh" {
						t.Policy = schema.Policy{ACLs: []schema.ACL{{Action: "accept", Src: []string{"*"}, Dst: []string{"*:*"}}}}
					}
					res := evaluateAll(b, t, nodes)
					affected := 0
					b.ReportAllocs()
					for b.Loop() {
						i := len(nodes)
						nd := Node{ID: tailcfg.NodeID(i + 1), Name: fmt.Sprintf("node%d", i), User: nodes[i%100+3].User,
							IPv4: netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)}),
							IPv6: netip.AddrFrom16([16]byte{0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})}
						nodes = append(nodes, nd)
						var ids []tailcfg.NodeID
						if mode == "delta" {
							res, ids = res.UpdateNodes([]Node{nd}, nil)
						} else {
							res, ids = res.Update(nodes)
						}
						affected = len(ids)
					}
					b.ReportMetric(float64(affected), "affected-nodes")
				})
			}
		}
	}
}
