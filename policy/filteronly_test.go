package policy

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
)

// TestPartialViewsMatchNodeView checks that PacketFilter, SelfRoutes,
// CapMap and SSHPolicy answer exactly what Node(id) holds, whether or not the view was
// built first, on a tailnet with subnet routers (two for one subnet), an
// exit node, node attributes and a node without IPv4.
func TestPartialViewsMatchNodeView(t *testing.T) {
	subnet := netip.MustParsePrefix("10.1.0.0/16")
	tn := &schema.Tailnet{
		Users: map[string]schema.User{"alice@example.com": {Login: "alice@example.com"}},
		Policy: schema.Policy{
			TagOwners: map[string][]string{"tag:web": {"alice@example.com"}, "tag:router": {"alice@example.com"}, "tag:exit": {"alice@example.com"}},
			ACLs: []schema.ACL{
				{Action: "accept", Src: []string{"alice@example.com"}, Dst: []string{"tag:web:443", "autogroup:self:*", "10.1.0.0/16:22", "autogroup:internet:*"}},
			},
			AutoApprovers: schema.AutoApprovers{
				Routes:   map[string][]string{"10.1.0.0/16": {"tag:router"}},
				ExitNode: []string{"tag:exit"},
			},
			NodeAttrs: []schema.NodeAttr{
				{Target: []string{"tag:web"}, Attr: []string{"disable-ipv4", "example.com/cap/custom"}},
				{Target: []string{"alice@example.com"}, Attr: []string{"funnel"}},
			},
			SSH: []schema.SSHRule{
				{Action: "check", Src: []string{"alice@example.com"}, Dst: []string{"tag:web"}, Users: []string{"root"}},
				{Action: "accept", Src: []string{"alice@example.com"}, Dst: []string{"autogroup:self"}, Users: []string{"autogroup:nonroot"}},
			},
			RandomizeClientPort: true,
		},
	}
	p, diags := Compile(tn)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	exits := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	nodes := []Node{
		{ID: 1, Name: "laptop", User: "alice@example.com", IPv4: netip.MustParseAddr("100.64.0.1"), IPv6: netip.MustParseAddr("fd7a:115c:a1e0::1")},
		{ID: 2, Name: "phone", User: "alice@example.com", IPv4: netip.MustParseAddr("100.64.0.2")},
		{ID: 3, Name: "web", Tags: []string{"tag:web"}, IPv4: netip.MustParseAddr("100.64.0.3"), IPv6: netip.MustParseAddr("fd7a:115c:a1e0::3")},
		{ID: 4, Name: "router-a", Tags: []string{"tag:router"}, IPv4: netip.MustParseAddr("100.64.0.4"),
			RoutableIPs: []netip.Prefix{subnet}, ApprovedRoutes: []netip.Prefix{subnet}},
		{ID: 5, Name: "router-b", Tags: []string{"tag:router"}, IPv4: netip.MustParseAddr("100.64.0.5"),
			RoutableIPs: []netip.Prefix{subnet}, ApprovedRoutes: []netip.Prefix{subnet}},
		{ID: 6, Name: "exit", Tags: []string{"tag:exit"}, IPv4: netip.MustParseAddr("100.64.0.6"),
			RoutableIPs: exits, ApprovedRoutes: exits},
	}
	type partial struct {
		Filter           []tailcfg.FilterRule
		Allowed, Primary []netip.Prefix
		Caps             tailcfg.NodeCapMap
		SSH              *tailcfg.SSHPolicy
	}
	opts := cmp.Options{cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Prefix{})}
	for _, n := range nodes {
		for _, viewFirst := range []bool{false, true} {
			res := p.Evaluate(nodes, Options{})
			v := res.Node(n.ID)
			if !viewFirst {
				res = p.Evaluate(nodes, Options{}) // no view built yet
			}
			allowed, primary := res.SelfRoutes(n.ID)
			got := partial{res.PacketFilter(n.ID), allowed, primary, res.CapMap(n.ID), res.SSHPolicy(n.ID)}
			want := partial{v.PacketFilter, v.AllowedIPs, v.PrimaryRoutes, v.CapMap, v.SSH}
			if diff := cmp.Diff(want, got, opts); diff != "" {
				t.Errorf("node %s (view built first: %v): partial views differ from Node() (-want +got):\n%s", n.Name, viewFirst, diff)
			}
		}
	}
	// The fixture exercises what it claims to.
	res := p.Evaluate(nodes, Options{})
	if _, primary := res.SelfRoutes(4); len(primary) != 1 {
		t.Errorf("router-a primary routes = %v, want the subnet (lowest ID wins)", primary)
	}
	if _, ok := res.CapMap(3)["example.com/cap/custom"]; !ok {
		t.Errorf("web's caps = %v, want example.com/cap/custom", res.CapMap(3))
	}
	if allowed, _ := res.SelfRoutes(3); len(allowed) != 1 || allowed[0].Addr().Is4() {
		t.Errorf("web (disable-ipv4) allowed IPs = %v, want only its IPv6 address", allowed)
	}
	if res.SSHPolicy(3) == nil || res.SSHPolicy(1) == nil || res.SSHPolicy(4) != nil {
		t.Errorf("SSH policies of web, laptop, router-a = %v, %v, %v; want rules, rules, none", res.SSHPolicy(3), res.SSHPolicy(1), res.SSHPolicy(4))
	}
	if f, _ := res.SelfRoutes(99); f != nil || res.PacketFilter(99) != nil || res.CapMap(99) != nil || res.SSHPolicy(99) != nil {
		t.Error("unknown node: want nil answers")
	}
}
