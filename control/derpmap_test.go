package control

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
)

func TestEffectiveDERPMap(t *testing.T) {
	base := &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{
		1: {RegionID: 1, RegionCode: "embedded"},
		2: {RegionID: 2, RegionCode: "other"},
	}}
	for _, tc := range []struct {
		name   string
		policy string
		want   []int // region IDs of the result
	}{
		{"absent", ``, []int{1, 2}},
		{"null", `null`, []int{1, 2}},
		{"add", `{"Regions": {"900": {"RegionID": 900, "Nodes": [{"Name": "a", "RegionID": 900, "HostName": "d.example"}]}}}`, []int{1, 2, 900}},
		{"remove", `{"Regions": {"2": null}}`, []int{1}},
		{"omit defaults", `{"OmitDefaultRegions": true, "Regions": {"900": {"RegionID": 900, "Nodes": [{"Name": "a", "RegionID": 900, "HostName": "d.example"}]}}}`, []int{900}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := effectiveDERPMap(base, json.RawMessage(tc.policy))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, slices.Sorted(maps.Keys(got.Regions))); diff != "" {
				t.Errorf("regions (-want +got):\n%s", diff)
			}
		})
	}
	if len(base.Regions) != 2 {
		t.Errorf("base map was modified: %v", base.Regions)
	}
	if _, err := effectiveDERPMap(base, json.RawMessage(`{"Regions": {"900": {"Bogus": 1}}}`)); err == nil {
		t.Error("unknown field in derpMap: no error")
	}
}

// TestPolicyDERPMapReachesNodes checks that a derpMap in the policy is in
// the netmap a node receives, and that a config change updates it.
func TestPolicyDERPMapReachesNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServer(t, testTailnet(), "")
	a := newRawNode(t, ts)
	a.register(a.registerReq(aliceKey))
	s := a.stream(ctx, a.mapReq(true))
	if m := s.next(); m.DERPMap == nil || m.DERPMap.Regions[950] != nil {
		t.Fatalf("first netmap DERP map = %+v, want one without region 950", m.DERPMap)
	}

	tn := testTailnet()
	tn.Policy.DERPMap = json.RawMessage(`{"Regions": {"950": {"RegionID": 950, "RegionCode": "own", "Nodes": [{"Name": "950a", "RegionID": 950, "HostName": "derp.example.com"}]}}}`)
	if err := ts.SetConfig(ctx, tn); err != nil {
		t.Fatal(err)
	}
	m := s.next()
	if m.DERPMap == nil || m.DERPMap.Regions[950] == nil || m.DERPMap.Regions[950].Nodes[0].HostName != "derp.example.com" {
		t.Fatalf("after SetConfig: DERP map = %+v, want region 950", m.DERPMap)
	}
}

// TestPrepareRefuses checks that Prepare refuses the configs the server
// cannot serve, without changing what is served, and that Install serves
// only what this server prepared.
func TestPrepareRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServer(t, testTailnet(), "")
	badPolicy := testTailnet()
	badPolicy.Policy.ACLs = []schema.ACL{{Action: "accept", Src: []string{"group:nope"}, Dst: []string{"*:*"}}}
	badDERP := testTailnet()
	badDERP.Policy.DERPMap = json.RawMessage(`{"Regions": {"900": {"Bogus": 1}}}`)
	goodDERP := testTailnet()
	goodDERP.Policy.DERPMap = json.RawMessage(`{"Regions": {"950": {"RegionID": 950, "RegionCode": "own"}}}`)
	for _, tc := range []struct {
		name string
		tn   *schema.Tailnet
		ok   bool
	}{
		{"same", testTailnet(), true},
		{"policy-derpmap", goodDERP, true},
		{"policy-does-not-compile", badPolicy, false},
		{"derpmap-unknown-field", badDERP, false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.Tailnet()
			p, err := ts.Prepare(tc.tn)
			if ts.Tailnet() != before {
				t.Error("Prepare installed the config")
			}
			if (err == nil) != tc.ok {
				t.Fatalf("Prepare = %v; want ok=%v", err, tc.ok)
			}
			var ds schema.Diagnostics
			if tc.name == "policy-does-not-compile" && (!errors.As(err, &ds) || len(ds) == 0) {
				t.Errorf("Prepare error %v does not carry the policy's diagnostics", err)
			}
			if !tc.ok {
				return
			}
			if err := ts.Install(ctx, p); err != nil {
				t.Fatalf("Install: %v", err)
			}
			if ts.Tailnet() != tc.tn {
				t.Error("Install did not serve the prepared config")
			}
		})
	}
	t.Run("prepared-by-another-server", func(t *testing.T) {
		other := startServer(t, testTailnet(), "")
		p, err := other.Prepare(goodDERP)
		if err != nil {
			t.Fatal(err)
		}
		before := ts.Tailnet()
		if err := ts.Install(ctx, p); err == nil || !strings.Contains(err.Error(), "not prepared by this server") {
			t.Errorf("Install of another server's Prepared = %v, want a refusal", err)
		}
		if _, err := ts.Test(ctx, p); err == nil {
			t.Error("Test of another server's Prepared succeeded")
		}
		if ts.Tailnet() != before {
			t.Error("another server's Prepared was installed")
		}
	})
}
