package policy

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"tailscale.com/tailcfg"
)

// TestTailnetCaps: every node gets the ssh and file-sharing capabilities
// unless the tailnet settings turn them off, with or without nodeAttrs,
// in its own view and from Result.CapMap alike.
func TestTailnetCaps(t *testing.T) {
	const ssh, files = tailcfg.CapabilitySSH, tailcfg.CapabilityFileSharing
	attrs := `"tagOwners": {"tag:web": []}, "nodeAttrs": [{"target": ["tag:web"], "attr": ["example.com/cap/x"]}]`
	tests := []struct {
		name     string
		doc      string
		wantUser tailcfg.NodeCapMap // the untagged node
		wantWeb  tailcfg.NodeCapMap // the tag:web node
	}{
		{"defaults", `{}`,
			tailcfg.NodeCapMap{ssh: nil, files: nil}, tailcfg.NodeCapMap{ssh: nil, files: nil}},
		{"ssh off", `{"tailnet": {"ssh": false}}`,
			tailcfg.NodeCapMap{files: nil}, tailcfg.NodeCapMap{files: nil}},
		{"file sharing off", `{"tailnet": {"fileSharing": false}}`,
			tailcfg.NodeCapMap{ssh: nil}, tailcfg.NodeCapMap{ssh: nil}},
		{"both off", `{"tailnet": {"ssh": false, "fileSharing": false}}`, nil, nil},
		{"defaults and nodeAttrs", `{` + attrs + `}`,
			tailcfg.NodeCapMap{ssh: nil, files: nil}, tailcfg.NodeCapMap{ssh: nil, files: nil, "example.com/cap/x": nil}},
		{"both off and nodeAttrs", `{"tailnet": {"ssh": false, "fileSharing": false}, ` + attrs + `}`,
			nil, tailcfg.NodeCapMap{"example.com/cap/x": nil}},
		{"nodeAttrs grant ssh with the setting off", `{"tailnet": {"ssh": false}, "nodeAttrs": [{"target": ["*"], "attr": ["https://tailscale.com/cap/ssh"]}]}`,
			tailcfg.NodeCapMap{ssh: nil, files: nil}, tailcfg.NodeCapMap{ssh: nil, files: nil}},
	}
	a := netip.MustParseAddr
	nodes := []Node{
		{ID: 1, User: "alice@example.com", IPv4: a("100.64.0.1")},
		{ID: 2, Tags: []string{"tag:web"}, IPv4: a("100.64.0.2")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, diags := Compile(load(t, tt.doc))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			res := p.Evaluate(nodes, Options{})
			for _, c := range []struct {
				id   tailcfg.NodeID
				want tailcfg.NodeCapMap
			}{{1, tt.wantUser}, {2, tt.wantWeb}} {
				if diff := cmp.Diff(c.want, res.Node(c.id).CapMap); diff != "" {
					t.Errorf("node %d view CapMap (-want +got):\n%s", c.id, diff)
				}
				if diff := cmp.Diff(c.want, res.CapMap(c.id)); diff != "" {
					t.Errorf("node %d Result.CapMap (-want +got):\n%s", c.id, diff)
				}
			}
		})
	}
}
