package policy

import (
	"net/netip"
	"testing"
)

// everyAliasPolicy names every kind of alias a rule can hold.
const everyAliasPolicy = `{
	"groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
	"tagOwners": {"tag:db": ["group:eng"], "tag:web": ["group:eng"], "tag:router": ["alice@example.com"]},
	"hosts": {"office": "192.168.1.0/24", "laptop": "100.64.0.1"},
	"ipsets": {"ipset:mixed": ["100.64.0.0/30", "fd7a:115c:a1e0::31", "10.0.0.0/8"]},
	"grants": [
		{"src": ["*"], "dst": ["*"], "ip": ["22"]},
		{"src": ["alice@example.com", "user:*@example.com", "group:eng", "tag:db"], "dst": ["tag:web", "bob@example.com"], "ip": ["80"]},
		{"src": ["autogroup:member", "autogroup:tagged"], "dst": ["autogroup:admin", "autogroup:owner"], "ip": ["443"]},
		{"src": ["autogroup:danger-all"], "dst": ["autogroup:internet"], "ip": ["*"]},
		{"src": ["office", "laptop", "ipset:mixed", "100.64.0.10-100.64.0.11"], "dst": ["office", "ipset:mixed", "8.8.8.8"], "ip": ["53"]},
		{"src": ["group:eng"], "dst": ["192.168.1.0/24"], "ip": ["*"], "via": ["tag:router"]},
	],
}`

// TestMayMatch checks that mayMatch, which Update uses to decide which
// rules a change leaves alone, says what nodesOf says for every identity
// alias of the policy and never misses an address alias that resolves to
// the node.
func TestMayMatch(t *testing.T) {
	bt, nodes := benchTailnet(300)
	for i := range nodes {
		if i%7 == 0 {
			nodes[i].User = "alice@other.example" // a user in no group, of another domain
		}
	}
	p, diags := Compile(bt)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	small, sdiags := Compile(load(t, smallPolicy))
	if sdiags.HasErrors() {
		t.Fatal(sdiags)
	}
	every, ediags := Compile(load(t, everyAliasPolicy))
	if ediags.HasErrors() {
		t.Fatal(ediags)
	}
	everyNodes := append(smallNodes(),
		Node{ID: 30, Name: "carol", User: "carol@example.org", IPv4: netip.MustParseAddr("100.64.0.30")},
		Node{ID: 31, Name: "stranger", User: "dave@elsewhere.net", IPv6: netip.MustParseAddr("fd7a:115c:a1e0::31")},
		Node{ID: 32, Name: "tagged-by-alice", User: "alice@example.com", Tags: []string{"tag:db"}, IPv4: netip.MustParseAddr("100.64.0.32")})
	for name, c := range map[string]struct {
		p     *Policy
		nodes []Node
	}{"bench300": {p, nodes}, "small": {small, smallNodes()}, "every alias": {every, everyNodes}} {
		res := c.p.Evaluate(c.nodes, Options{})
		for k, er := range res.rules {
			var as []alias
			as = append(as, er.srcs...)
			as = append(as, er.via...)
			for _, d := range er.dsts {
				as = append(as, d.a)
			}
			for _, a := range as {
				if a.kind == aliasAutogroup && a.name == agSelf {
					continue
				}
				for _, s := range res.nodes {
					got := c.p.mayMatch(a, s, true)
					want := res.dstNodesOf(a).has(s.idx)
					if a.kind != aliasPrefixes {
						want = res.nodesOf(a).has(s.idx)
					}
					if got != want && (a.kind != aliasPrefixes || !got) {
						t.Errorf("%s: rule %d: alias %s, node %d: mayMatch = %v, resolution says %v", name, k, a, s.ID, got, want)
					}
				}
			}
		}
	}
}
