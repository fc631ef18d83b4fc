package policy

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"tailscale.com/tailcfg"
)

// TestAccess lists, for nodes of smallPolicy, whom each may reach and who
// may reach it, by rule and with the rule's position.
func TestAccess(t *testing.T) {
	p, diags := Compile(load(t, smallPolicy))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	res := p.Evaluate(smallNodes(), Options{})
	// line renders an Access as "FROM->TO RULE@POS PORTS PROTOS".
	line := func(a Access) string {
		return fmt.Sprintf("%d->%d %s@%s %v %v", a.From, a.To, a.Rule, a.Pos, a.Ports, a.Protos)
	}
	for _, tc := range []struct {
		name    string
		id      tailcfg.NodeID
		out, in []string
	}{
		{name: "user with another device of its own", id: 1,
			out: []string{"1->2 acls[1]@policy.hujson:7:3 [*] []", "1->10 acls[0]@policy.hujson:6:3 [5432] []"},
			in:  []string{"2->1 acls[1]@policy.hujson:7:3 [*] []"}},
		{name: "user alone: self opens nothing, internet and capabilities are not node access", id: 3,
			out: []string{"3->10 acls[0]@policy.hujson:6:3 [5432] []"}},
		{name: "tagged destination of users and tags", id: 10,
			in: []string{
				"1->10 acls[0]@policy.hujson:6:3 [5432] []",
				"2->10 acls[0]@policy.hujson:6:3 [5432] []",
				"3->10 acls[0]@policy.hujson:6:3 [5432] []",
				"11->10 acls[2]@policy.hujson:8:3 [5432] [6]",
			}},
		{name: "a router's own address is not the subnet behind it", id: 20},
		{name: "unknown node", id: 99},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, in := res.Access(tc.id)
			var gotOut, gotIn []string
			for _, a := range out {
				gotOut = append(gotOut, line(a))
			}
			for _, a := range in {
				gotIn = append(gotIn, line(a))
			}
			if diff := cmp.Diff(tc.out, gotOut); diff != "" {
				t.Errorf("out (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.in, gotIn); diff != "" {
				t.Errorf("in (-want +got):\n%s", diff)
			}
		})
	}
}
