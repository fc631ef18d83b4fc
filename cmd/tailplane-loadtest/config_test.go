package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlanPeers(t *testing.T) {
	tests := []struct {
		name   string
		p      plan
		groups []int // group of each node
		peers  []int // expected peer count of each node
		keys   []string
	}{
		{
			name:   "full",
			p:      plan{Nodes: 4, Policy: policyFull},
			groups: []int{-1, -1, -1, -1},
			peers:  []int{3, 3, 3, 3},
			keys:   []string{"fleet"},
		},
		{
			// 2 services, groups {2,3,4} {5,6,7} {8}.
			name:   "segmented-partial-last-group",
			p:      plan{Nodes: 9, Policy: policySegmented, GroupSize: 3, Services: 2},
			groups: []int{-1, -1, 0, 0, 0, 1, 1, 1, 2},
			peers:  []int{7, 7, 4, 4, 4, 4, 4, 4, 2},
			keys:   []string{"svc", "g0", "g1", "g2"},
		},
		{
			name:   "segmented-no-services",
			p:      plan{Nodes: 4, Policy: policySegmented, GroupSize: 2},
			groups: []int{0, 0, 1, 1},
			peers:  []int{1, 1, 1, 1},
			keys:   []string{"svc", "g0", "g1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.check(); err != nil {
				t.Fatal(err)
			}
			var groups, peers []int
			for i := range tt.p.Nodes {
				groups = append(groups, tt.p.group(i))
				peers = append(peers, tt.p.expectedPeers(i))
				seen := 0
				for j := range tt.p.Nodes {
					if tt.p.sees(i, j) {
						seen++
					}
					if tt.p.sees(i, j) != tt.p.sees(j, i) {
						t.Errorf("sees(%d, %d) != sees(%d, %d): peering must be symmetric", i, j, j, i)
					}
				}
				if seen != tt.p.expectedPeers(i) {
					t.Errorf("node %d: sees %d nodes, expectedPeers says %d", i, seen, tt.p.expectedPeers(i))
				}
				var inRanges, want []int
				for _, rg := range tt.p.peerRanges(i) {
					for j := rg[0]; j < rg[1]; j++ {
						if j != i {
							inRanges = append(inRanges, j)
						}
					}
				}
				for j := range tt.p.Nodes {
					if tt.p.sees(i, j) {
						want = append(want, j)
					}
				}
				if diff := cmp.Diff(want, inRanges); diff != "" {
					t.Errorf("node %d: peerRanges differ from sees (-sees +peerRanges):\n%s", i, diff)
				}
			}
			if diff := cmp.Diff(tt.groups, groups); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.peers, peers); diff != "" {
				t.Errorf("expected peers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.keys, tt.p.keyNames()); diff != "" {
				t.Errorf("key names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanCheck(t *testing.T) {
	tests := []struct {
		p    plan
		want string // error substring; empty means valid
	}{
		{plan{Nodes: 2, Policy: policyFull}, ""},
		{plan{Nodes: 1, Policy: policyFull}, "at least 2"},
		{plan{Nodes: 5, Policy: policySegmented, Services: 3}, ""},
		{plan{Nodes: 4, Policy: policySegmented, Services: 3}, "more nodes than services"},
		{plan{Nodes: 10, Policy: "mesh"}, `want "full" or "segmented"`},
	}
	for _, tt := range tests {
		err := tt.p.check()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if (tt.want == "") != (err == nil) || !strings.Contains(got, tt.want) {
			t.Errorf("check(%+v) = %q, want an error containing %q", tt.p, got, tt.want)
		}
	}
}

// TestTailnetDoc: the generated config carries the revision marker in
// rules that leave peer sets alone, and only hashes of the secrets.
func TestTailnetDoc(t *testing.T) {
	p := plan{Nodes: 7, Policy: policySegmented, GroupSize: 2, Services: 2}
	secrets, err := newSecrets(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := writeConfig(dir, p, secrets, 3); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "tailnet.hujson"))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range secrets {
		if strings.Contains(string(b), s) {
			t.Errorf("the config holds the secret of key %s", name)
		}
	}
	var doc struct {
		ACLs      []rule              `json:"acls"`
		TagOwners map[string][]string `json:"tagOwners"`
		AuthKeys  map[string]authKey  `json:"authKeys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	want := []rule{
		{"accept", []string{"tag:g0"}, []string{"tag:g0:*"}},
		{"accept", []string{"tag:g0"}, []string{"tag:g0:40003"}},
		{"accept", []string{"tag:g1"}, []string{"tag:g1:*"}},
		{"accept", []string{"tag:g1"}, []string{"tag:g1:40003"}},
		{"accept", []string{"tag:g2"}, []string{"tag:g2:*"}},
		{"accept", []string{"tag:g2"}, []string{"tag:g2:40003"}},
		{"accept", []string{"tag:g0", "tag:g1", "tag:g2"}, []string{"tag:svc:443"}},
		{"accept", []string{"tag:g0", "tag:g1", "tag:g2"}, []string{"tag:svc:40003"}},
	}
	if diff := cmp.Diff(want, doc.ACLs); diff != "" {
		t.Errorf("acls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"tag:g1"}, doc.AuthKeys["g1"].Tags); diff != "" {
		t.Errorf("key g1 tags (-want +got):\n%s", diff)
	}
	if got, want := doc.AuthKeys["g1"].SecretHash, secretHash(secrets["g1"]); got != want {
		t.Errorf("key g1 secretHash = %s, want %s", got, want)
	}
	if len(doc.TagOwners) != 4 {
		t.Errorf("tagOwners has %d tags, want 4 (svc, g0..g2): %v", len(doc.TagOwners), doc.TagOwners)
	}
}
