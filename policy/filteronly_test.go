package policy

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
)

func TestPacketFilterMatchesNodeView(t *testing.T) {
	tn := &schema.Tailnet{
		Users: map[string]schema.User{"alice@example.com": {Login: "alice@example.com"}},
		Policy: schema.Policy{
			TagOwners: map[string][]string{"tag:web": {"alice@example.com"}},
			ACLs:      []schema.ACL{{Action: "accept", Src: []string{"alice@example.com"}, Dst: []string{"tag:web:443", "autogroup:self:*"}}},
		},
	}
	p, diags := Compile(tn)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	nodes := []Node{
		{ID: 1, Name: "laptop", User: "alice@example.com", IPv4: netip.MustParseAddr("100.64.0.1")},
		{ID: 2, Name: "phone", User: "alice@example.com", IPv4: netip.MustParseAddr("100.64.0.2")},
		{ID: 3, Name: "web", Tags: []string{"tag:web"}, IPv4: netip.MustParseAddr("100.64.0.3")},
	}
	for _, id := range []tailcfg.NodeID{1, 2, 3} {
		fresh := p.Evaluate(nodes, Options{})
		got := fresh.PacketFilter(id) // before any view exists
		want := fresh.Node(id).PacketFilter
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("node %d: PacketFilter differs from Node().PacketFilter (-want +got):\n%s", id, diff)
		}
		if again := fresh.PacketFilter(id); cmp.Diff(want, again) != "" {
			t.Errorf("node %d: cached PacketFilter differs", id)
		}
	}
	if got := p.Evaluate(nodes, Options{}).PacketFilter(99); got != nil {
		t.Errorf("unknown node: %v, want nil", got)
	}
}
