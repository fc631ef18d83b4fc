package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/replica"
	"github.com/tailplane/tailplane/store"
)

// TestWriteStatusReplicasGolden: status lists every replica, with its
// address, nodes and lease, the applier and who applied the latest
// revision; a lapsed one is marked so. The JSON keeps its field names.
func TestWriteStatusReplicasGolden(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	rs := &replica.Status{
		Self: "r0b1c2d3e4f5",
		Replicas: []store.Replica{
			{ID: "r9a8b7c6d5e4", Address: "tp1.example.com:443", Nodes: 310, Started: now.Add(-time.Hour), Renewed: now.Add(-time.Second), LeaseUntil: now.Add(9 * time.Second), Live: true, Applier: true},
			{ID: "r0b1c2d3e4f5", Address: "tp2.example.com:443", Nodes: 1, Started: now.Add(-30 * time.Minute), Renewed: now.Add(-2 * time.Second), LeaseUntil: now.Add(8 * time.Second), Live: true},
			{ID: "r5f5e5d5c5b5", Address: "tp3.example.com:443", Nodes: 12, Started: now.Add(-20 * time.Minute), Renewed: now.Add(-70 * time.Second), LeaseUntil: now.Add(-60 * time.Second)},
		},
		AppliedRevision: 12, AppliedBy: "r5f5e5d5c5b5",
	}
	st := &admin.Status{Serving: true, Source: admin.SourceStatus{URL: "https://git.example.com/infra/tailnet.git"}, Nodes: admin.NodeCounts{Online: 311, Total: 330}, Replicas: rs}
	var b bytes.Buffer
	writeStatus(&b, "https://tailplane.example.com", st, nil, now)
	golden(t, "status-replicas.golden", b.String())
	js, err := json.MarshalIndent(rs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status-replicas.json.golden", string(js)+"\n")
}
