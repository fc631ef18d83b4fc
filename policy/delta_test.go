package policy

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"tailscale.com/tailcfg"
)

// deltaCase is a policy and the inventory a sequence of node changes
// starts from.
type deltaCase struct {
	name  string
	p     *Policy
	nodes []Node
}

func deltaCases(t testing.TB) []deltaCase {
	compile := func(doc string) *Policy {
		p, diags := Compile(load(t, doc))
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return p
	}
	bt, bnodes := benchTailnet(200)
	bench, diags := Compile(bt)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	every := append(smallNodes(),
		Node{ID: 30, Name: "carol", User: "carol@example.org", IPv4: netip.MustParseAddr("100.64.0.30")},
		Node{ID: 31, Name: "stranger", User: "dave@elsewhere.net", IPv6: netip.MustParseAddr("fd7a:115c:a1e0::31")},
		Node{ID: 32, Name: "tagged-by-alice", User: "alice@example.com", Tags: []string{"tag:db"}, IPv4: netip.MustParseAddr("100.64.0.32")})
	return []deltaCase{
		{"mesh", compile(`{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`), smallNodes()},
		{"small", compile(smallPolicy), smallNodes()},
		{"ssh", compile(sshUpdatePolicy), smallNodes()},
		{"via", compile(viaUpdatePolicy), smallNodes()},
		{"every alias", compile(everyAliasPolicy), every},
		{"bench200", bench, bnodes},
	}
}

// owners returns the users and tags nodes of c change to and join as.
func (c deltaCase) owners() (users, tags []string) {
	for _, n := range c.nodes {
		if n.Tagged() {
			tags = append(tags, n.Tags...)
		} else {
			users = append(users, n.User)
		}
	}
	slices.Sort(users)
	slices.Sort(tags)
	return append(slices.Compact(users), "stranger@elsewhere.net"), slices.Compact(tags)
}

var deltaRoutes = [][]netip.Prefix{
	nil,
	{netip.MustParsePrefix("192.168.1.0/24")},
	{netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("10.1.0.0/16")},
	{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
	{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
}

// deltaStep changes inv (cloned first) as op and rng say and returns the
// new inventory with the change as UpdateNodes takes it.
func (c deltaCase) step(rng *rand.Rand, op int, inv []Node, serial int) (out, changed []Node, removed []tailcfg.NodeID) {
	users, tags := c.owners()
	out = cloneNodes(inv)
	pick := func() int { return rng.IntN(len(out)) }
	owner := func(n *Node) {
		if rng.IntN(3) == 0 && len(tags) > 0 {
			n.User, n.Tags = "", []string{tags[rng.IntN(len(tags))]}
		} else {
			n.User, n.Tags = users[rng.IntN(len(users))], nil
		}
	}
	addr := func(n *Node) {
		n.IPv4 = netip.AddrFrom4([4]byte{100, 90, byte(serial >> 8), byte(serial)})
		n.IPv6 = netip.AddrFrom16([16]byte{0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 12: 9, 14: byte(serial >> 8), 15: byte(serial)})
	}
	if len(out) == 0 {
		op = 0
	}
	switch op % 9 {
	case 0, 1: // a node joins with the next ID, as a registration does
		n := Node{ID: out[len(out)-1].ID + 1, Name: fmt.Sprint("joiner", serial)}
		if len(out) == 0 {
			n.ID = 1
		}
		owner(&n)
		addr(&n)
		out = append(out, n)
		changed = append(changed, n)
	case 2: // a node joins with an ID below the highest
		id := tailcfg.NodeID(rng.IntN(int(out[len(out)-1].ID)) + 1)
		if slices.ContainsFunc(out, func(n Node) bool { return n.ID == id }) {
			return c.step(rng, 0, inv, serial)
		}
		n := Node{ID: id, Name: fmt.Sprint("late", serial)}
		owner(&n)
		addr(&n)
		out = append(out, n)
		changed = append(changed, n)
	case 3: // a node leaves
		i := pick()
		removed = append(removed, out[i].ID)
		out = slices.Delete(out, i, i+1)
	case 4: // retag or hand to a user
		i := pick()
		owner(&out[i])
		changed = append(changed, out[i])
	case 5: // advertise and approve routes, or withdraw them
		i := pick()
		r := deltaRoutes[rng.IntN(len(deltaRoutes))]
		out[i].RoutableIPs, out[i].ApprovedRoutes = slices.Clone(r), slices.Clone(r)
		changed = append(changed, out[i])
	case 6: // go offline or online, a router as often as not
		i := pick()
		if j := slices.IndexFunc(out, func(n Node) bool { return len(n.ApprovedRoutes) > 0 }); j >= 0 && rng.IntN(2) == 0 {
			i = j
		}
		out[i].Offline = !out[i].Offline
		changed = append(changed, out[i])
	case 7: // new addresses, or another node's (the engine must not rely on addresses being unique)
		i := pick()
		addr(&out[i])
		if j := pick(); rng.IntN(3) == 0 && j != i {
			out[i].IPv4, out[i].IPv6 = out[j].IPv4, out[j].IPv6
		}
		changed = append(changed, out[i])
	case 8: // several at once, and a node listed unchanged
		out, changed, removed = c.step(rng, 4, out, serial)
		var more []Node
		var gone []tailcfg.NodeID
		out, more, gone = c.step(rng, rng.IntN(8), out, serial+1000)
		changed = append(changed, more...)
		removed = append(removed, gone...)
		if len(out) > 0 {
			changed = append(changed, out[pick()])
		}
	}
	slices.SortFunc(out, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	// UpdateNodes takes a changed node's last state only once: keep the
	// final state of nodes changed twice.
	final := map[tailcfg.NodeID]Node{}
	for _, n := range out {
		final[n.ID] = n
	}
	for i := range changed {
		if n, ok := final[changed[i].ID]; ok {
			changed[i] = n
		}
	}
	changed = slices.DeleteFunc(changed, func(n Node) bool { _, ok := final[n.ID]; return !ok })
	return out, changed, removed
}

// checkDeltaSteps runs steps random changes of c through UpdateNodes and
// checks each result against a fresh Evaluate (continuing from the same
// elections): every view, its peer set and the primaries. It also checks
// what UpdateNodes reports: every node whose view differs from the
// previous result's, and every node added or removed, is affected.
func checkDeltaSteps(t *testing.T, c deltaCase, rng *rand.Rand, steps int) {
	t.Helper()
	inv := cloneNodes(c.nodes)
	res := c.p.Evaluate(inv, Options{})
	for step := range steps {
		// Some views computed, some only without peers (as sessions ask
		// for filters), some not: Update carries the first two and must
		// not need the third.
		for _, n := range inv {
			switch rng.IntN(3) {
			case 0:
				res.Node(n.ID)
			case 1:
				res.PacketFilter(n.ID)
			}
		}
		op := rng.IntN(9)
		next, changed, removed := c.step(rng, op, inv, step+1)
		prev := res
		var ids []tailcfg.NodeID
		res, ids = prev.UpdateNodes(changed, removed)
		fresh := c.p.Evaluate(next, Options{Primaries: prev.Primaries()})
		where := fmt.Sprintf("step %d (op %d, changed %v, removed %v)", step, op, nodeIDs(changed), removed)
		if got, want := fmt.Sprint(res.Primaries()), fmt.Sprint(fresh.Primaries()); got != want {
			t.Fatalf("%s: primaries %s, Evaluate elects %s", where, got, want)
		}
		if got, want := res.Nodes(), fresh.Nodes(); !slices.Equal(got, want) {
			t.Fatalf("%s: nodes %v, want %v", where, got, want)
		}
		for _, n := range next {
			got, want := viewJSON(res, n.ID), viewJSON(fresh, n.ID)
			if got != want {
				t.Fatalf("%s: node %d: UpdateNodes' view differs from Evaluate's (affected: %v)\n got %s\nwant %s", where, n.ID, slices.Contains(ids, n.ID), got, want)
			}
			checkPeerSet(t, res, n.ID, next)
			if !slices.Contains(ids, n.ID) && viewJSON(prev, n.ID) != got {
				t.Fatalf("%s: node %d's view changed but it is not reported affected (%v)\nbefore %s\n after %s", where, n.ID, ids, viewJSON(prev, n.ID), got)
			}
		}
		for _, id := range removed {
			if !slices.Contains(ids, id) && prev.state(id) != nil {
				t.Fatalf("%s: removed node %d is not reported affected (%v)", where, id, ids)
			}
		}
		if !slices.IsSorted(ids) {
			t.Fatalf("%s: affected IDs %v are not sorted", where, ids)
		}
		inv = next
	}
}

func nodeIDs(ns []Node) []tailcfg.NodeID {
	var out []tailcfg.NodeID
	for _, n := range ns {
		out = append(out, n.ID)
	}
	return out
}

// TestUpdateNodesMatchesEvaluate applies random sequences of joins (with
// the next ID, as registrations do, and below it), leaves, retags, route
// changes, elections and address changes through UpdateNodes, over every
// kind of rule, and checks each step against a fresh Evaluate.
func TestUpdateNodesMatchesEvaluate(t *testing.T) {
	for _, c := range deltaCases(t) {
		t.Run(c.name, func(t *testing.T) {
			steps := 80
			if len(c.nodes) > 100 {
				steps = 25
			}
			for seed := range uint64(4) {
				checkDeltaSteps(t, c, rand.New(rand.NewPCG(seed, 13)), steps)
			}
		})
	}
}

// FuzzUpdateNodes is TestUpdateNodesMatchesEvaluate with the random
// sequence's seed and policy chosen by the fuzzer.
func FuzzUpdateNodes(f *testing.F) {
	for i := range 6 {
		f.Add(uint64(i), uint8(i))
	}
	cases := deltaCases(f)
	f.Fuzz(func(t *testing.T, seed uint64, which uint8) {
		c := cases[int(which)%len(cases)]
		checkDeltaSteps(t, c, rand.New(rand.NewPCG(seed, 7)), 12)
	})
}

// TestPerNodeMembership checks the per-node predicates UpdateNodes patches
// rule sets with against the rules resolved over the whole inventory:
// srcHas against each rule's source nodes, dstHas against its destination
// nodes, identityHas against nodesOf, and srcAddrs against the source
// address set.
func TestPerNodeMembership(t *testing.T) {
	for _, c := range deltaCases(t) {
		rng := rand.New(rand.NewPCG(3, 3))
		inv := cloneNodes(c.nodes)
		for step := range 30 {
			inv, _, _ = c.step(rng, rng.IntN(8), inv, step+1)
			res := c.p.Evaluate(inv, Options{})
			for k, er := range res.rules {
				for _, s := range res.nodes {
					where := fmt.Sprintf("%s: step %d: rule %d, node %d", c.name, step, k, s.ID)
					if got, want := c.p.srcHas(er.srcs, s), er.srcNodes.has(s.idx); got != want {
						t.Fatalf("%s: srcHas = %v, the resolved sources say %v", where, got, want)
					}
					if got, want := c.p.dstHas(er.rule, s, er.viaNodes.has(s.idx)), er.dstNodes.has(s.idx); got != want {
						t.Fatalf("%s: dstHas = %v, the resolved destinations say %v", where, got, want)
					}
					if c.p.srcAddrs(er.srcs, s) {
						for _, a := range s.addrs {
							if !er.srcSet.ContainsPrefix(a) {
								t.Fatalf("%s: srcAddrs, but the source set lacks %v", where, a)
							}
						}
					}
					for _, a := range slices.Concat(er.srcs, er.via) {
						if got, want := c.p.identityHas(a, s), res.nodesOf(a).has(s.idx); got != want {
							t.Fatalf("%s: alias %s: identityHas = %v, nodesOf says %v", where, a, got, want)
						}
					}
				}
			}
		}
	}
}

// TestUpdateNodesKeepsPositions checks which changes UpdateNodes applies
// in place (node states shared with the previous Result, removed nodes
// leaving holes) and which re-index, and that each result equals
// Evaluate's.
func TestUpdateNodesKeepsPositions(t *testing.T) {
	p, diags := Compile(load(t, smallPolicy))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	a := netip.MustParseAddr
	joiner := Node{ID: 21, Name: "joiner", User: "bob@example.com", IPv4: a("100.64.0.21"), IPv6: a("fd7a:115c:a1e0::21")}
	early := Node{ID: 5, Name: "early", User: "bob@example.com", IPv4: a("100.64.0.5")}
	bob := smallNodes()[2] // ID 3
	retagged := bob
	retagged.User, retagged.Tags = "", []string{"tag:web"}
	tests := []struct {
		name      string
		changed   []Node
		removed   []tailcfg.NodeID
		inPlace   bool
		wantHoles int
	}{
		{"join with the next ID", []Node{joiner}, nil, true, 0},
		{"retag", []Node{retagged}, nil, true, 0},
		{"leave", nil, []tailcfg.NodeID{3}, true, 1},
		{"leave, then come back", []Node{bob}, []tailcfg.NodeID{3}, true, 1}, // removed wins
		{"join below the highest ID", []Node{early}, nil, false, 0},
		{"two leave: more holes than a quarter", nil, []tailcfg.NodeID{1, 2}, false, 0},
		{"unchanged", []Node{smallNodes()[0]}, nil, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := p.Evaluate(smallNodes(), Options{})
			res, _ := prev.UpdateNodes(tt.changed, tt.removed)
			// Node 20 (the router) is in no change: its state is
			// shared exactly when positions were kept.
			if got := res.state(20) == prev.state(20); got != tt.inPlace {
				t.Errorf("in place = %v, want %v", got, tt.inPlace)
			}
			if res.holes != tt.wantHoles {
				t.Errorf("holes = %d, want %d", res.holes, tt.wantHoles)
			}
			want := p.Evaluate(res.Inventory(), Options{Primaries: prev.Primaries()})
			if got, wantIDs := res.Nodes(), want.Nodes(); !slices.Equal(got, wantIDs) {
				t.Fatalf("nodes %v, want %v", got, wantIDs)
			}
			for _, id := range want.Nodes() {
				if got, w := viewJSON(res, id), viewJSON(want, id); got != w {
					t.Errorf("node %d: view differs from Evaluate's\n got %s\nwant %s", id, got, w)
				}
			}
		})
	}
	// The first nodes join an empty tailnet, one at a time.
	res := p.Evaluate(nil, Options{})
	for _, n := range smallNodes() {
		var ids []tailcfg.NodeID
		res, ids = res.UpdateNodes([]Node{n}, nil)
		if !slices.Contains(ids, n.ID) {
			t.Fatalf("node %d joined, affected %v", n.ID, ids)
		}
	}
	want := p.Evaluate(smallNodes(), Options{})
	for _, n := range smallNodes() {
		if got, w := viewJSON(res, n.ID), viewJSON(want, n.ID); got != w {
			t.Errorf("after joining one by one, node %d: view differs from Evaluate's\n got %s\nwant %s", n.ID, got, w)
		}
	}
	// A node that left comes back to its place.
	prev := p.Evaluate(smallNodes(), Options{})
	gone, _ := prev.UpdateNodes(nil, []tailcfg.NodeID{3})
	back, ids := gone.UpdateNodes([]Node{bob}, nil)
	if back.holes != 0 || back.state(3) == nil || back.state(3).idx != prev.state(3).idx || back.state(20) != prev.state(20) {
		t.Errorf("node 3 did not come back to its place in place: holes %d, state %+v", back.holes, back.state(3))
	}
	if !slices.Contains(ids, 3) {
		t.Errorf("affected %v lacks the node that came back", ids)
	}
}

// TestUpdateNodesWhileReading derives Results from one Result (several
// times: updates must not modify what they share) while other goroutines
// compute its views, as sessions do; run it with -race.
func TestUpdateNodesWhileReading(t *testing.T) {
	c := deltaCases(t)[5] // bench200
	prev := c.p.Evaluate(c.nodes, Options{})
	want := map[tailcfg.NodeID]string{}
	for _, n := range c.nodes {
		want[n.ID] = viewJSON(c.p.Evaluate(c.nodes, Options{}), n.ID)
	}
	done := make(chan struct{})
	errs := make(chan error, 2)
	for g := range 2 {
		go func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				n := c.nodes[(i*7+g)%len(c.nodes)]
				prev.PacketFilter(n.ID)
				if got := viewJSON(prev, n.ID); got != want[n.ID] {
					errs <- fmt.Errorf("node %d: view changed while Results were derived from it", n.ID)
					return
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for step := range 30 {
		_, changed, removed := c.step(rng, rng.IntN(9), c.nodes, step+1)
		prev.UpdateNodes(changed, removed)
	}
	close(done)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
