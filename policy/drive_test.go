package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"tailscale.com/tailcfg"
)

// TestTaildriveGrants checks the Taildrive capabilities of grants against
// what Tailscale documents (`tailscale drive share --help`) and what
// tailscaled reads: a sharer (the grant's destination) serves a peer whose
// address carries tailscale.com/cap/drive towards it, and an accessor (the
// grant's source) lists as remotes the peers that grant it
// tailscale.com/cap/drive-sharer. So the destination gets cap/drive from
// the sources, and each source gets drive-sharer from the destinations.
func TestTaildriveGrants(t *testing.T) {
	const tags = `"tagOwners": {"tag:db": ["alice@example.com"], "tag:web": ["alice@example.com"], "tag:router": ["alice@example.com"]},`
	rw := `{"tailscale.com/cap/drive": [{"shares": ["*"], "access": "rw"}]}`
	tests := []struct {
		name string
		doc  string
		want map[tailcfg.NodeID][]string // node -> "sources cap on dsts"
	}{
		{
			// The grant the docs suggest to give all users their own shares.
			name: "members to their own devices",
			doc:  `{` + tags + `"grants": [{"src": ["autogroup:member"], "dst": ["autogroup:self"], "app": ` + rw + `}]}`,
			want: map[tailcfg.NodeID][]string{
				1: {
					"100.64.0.1-100.64.0.2,fd7a:115c:a1e0::1-fd7a:115c:a1e0::2 tailscale.com/cap/drive on 100.64.0.1/32,fd7a:115c:a1e0::1/128",
					"100.64.0.1-100.64.0.2,fd7a:115c:a1e0::1-fd7a:115c:a1e0::2 tailscale.com/cap/drive-sharer on 100.64.0.1/32,fd7a:115c:a1e0::1/128",
				},
				2: {
					"100.64.0.1-100.64.0.2,fd7a:115c:a1e0::1-fd7a:115c:a1e0::2 tailscale.com/cap/drive on 100.64.0.2/32,fd7a:115c:a1e0::2/128",
					"100.64.0.1-100.64.0.2,fd7a:115c:a1e0::1-fd7a:115c:a1e0::2 tailscale.com/cap/drive-sharer on 100.64.0.2/32,fd7a:115c:a1e0::2/128",
				},
				3: {
					"100.64.0.3,fd7a:115c:a1e0::3 tailscale.com/cap/drive on 100.64.0.3/32,fd7a:115c:a1e0::3/128",
					"100.64.0.3,fd7a:115c:a1e0::3 tailscale.com/cap/drive-sharer on 100.64.0.3/32,fd7a:115c:a1e0::3/128",
				},
			},
		},
		{
			// The docs' read-only example: a group reaches one machine's
			// "docs" share, the machine named by a host alias.
			name: "a group to a machine named by its address",
			doc: `{` + tags + `"groups": {"group:home": ["bob@example.com"]}, "hosts": {"mylaptop": "100.64.0.10"},
				"grants": [{"src": ["group:home"], "dst": ["mylaptop"], "app": {"tailscale.com/cap/drive": [{"shares": ["docs"], "access": "ro"}]}}]}`,
			want: map[tailcfg.NodeID][]string{
				3:  {"100.64.0.10 tailscale.com/cap/drive-sharer on 100.64.0.3/32,fd7a:115c:a1e0::3/128"},
				10: {"100.64.0.3,fd7a:115c:a1e0::3 tailscale.com/cap/drive on 100.64.0.10/32"},
			},
		},
		{
			name: "members to a tagged file server",
			doc:  `{` + tags + `"grants": [{"src": ["autogroup:member"], "dst": ["tag:db"], "app": ` + rw + `}]}`,
			want: map[tailcfg.NodeID][]string{
				1:  {"100.64.0.10,fd7a:115c:a1e0::10 tailscale.com/cap/drive-sharer on 100.64.0.1/32,fd7a:115c:a1e0::1/128"},
				2:  {"100.64.0.10,fd7a:115c:a1e0::10 tailscale.com/cap/drive-sharer on 100.64.0.2/32,fd7a:115c:a1e0::2/128"},
				3:  {"100.64.0.10,fd7a:115c:a1e0::10 tailscale.com/cap/drive-sharer on 100.64.0.3/32,fd7a:115c:a1e0::3/128"},
				10: {"100.64.0.1-100.64.0.3,fd7a:115c:a1e0::1-fd7a:115c:a1e0::3 tailscale.com/cap/drive on 100.64.0.10/32,fd7a:115c:a1e0::10/128"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			p, diags := Compile(load(t, tt.doc))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			res := p.Evaluate(smallNodes(), Options{})
			got := map[tailcfg.NodeID][]string{}
			for _, n := range smallNodes() {
				if lines := capGrantLines(res.Node(n.ID).PacketFilter); len(lines) > 0 {
					got[n.ID] = lines
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("capability grants per node (-want +got):\n%s", diff)
			}
		})
	}
}

// capGrantLines renders the capability grants of a packet filter as
// "sources capability on destinations", sorted.
func capGrantLines(rules []tailcfg.FilterRule) []string {
	var out []string
	for _, r := range rules {
		for _, cg := range r.CapGrant {
			var dsts []string
			for _, d := range cg.Dsts {
				dsts = append(dsts, d.String())
			}
			for name := range cg.CapMap {
				out = append(out, fmt.Sprintf("%s %s on %s", strings.Join(r.SrcIPs, ","), name, strings.Join(dsts, ",")))
			}
		}
	}
	slices.Sort(out)
	return out
}
