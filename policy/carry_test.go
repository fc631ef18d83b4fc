package policy

import (
	"testing"
)

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
	for name, c := range map[string]struct {
		p     *Policy
		nodes []Node
	}{"bench300": {p, nodes}, "small": {small, smallNodes()}} {
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
