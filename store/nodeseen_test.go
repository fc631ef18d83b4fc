package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSaveNodeSeen: what a node's own replica learns from its map stream
// is saved without writing over what another replica changed in the row
// meanwhile (here: the node's approval and its name).
func TestSaveNodeSeen(t *testing.T) { eachDB(t, testSaveNodeSeen) }

func testSaveNodeSeen(t *testing.T, db testDB) {
	ctx := context.Background()
	here, other := db.open(t), db.open(t)
	at := time.Unix(1_700_000_000, 0).UTC()
	n := &Node{StableID: "s1", MachineKey: "m", NodeKey: "k1", Hostname: "laptop", GivenName: "laptop", UserLogin: "alice@example.com",
		IPv4: "100.64.0.1", IPv6: "fd7a:115c:a1e0::1", Hostinfo: json.RawMessage(`{"Hostname":"laptop"}`), CreatedAt: at, PendingApproval: true}
	if err := here.SaveNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	approved, err := other.NodeByID(ctx, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	approved.PendingApproval, approved.GivenName = false, "work-laptop"
	if err := other.SaveNode(ctx, approved); err != nil {
		t.Fatal(err)
	}
	stale := *n // this replica's copy: still pending, the old name
	stale.Hostname, stale.Hostinfo, stale.DiscoKey, stale.LastSeen = "laptop2", json.RawMessage(`{"Hostname":"laptop2"}`), "discokey:1", at.Add(time.Hour)
	if err := here.SaveNodeSeen(ctx, &stale); err != nil {
		t.Fatal(err)
	}
	got, err := other.NodeByID(ctx, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := *approved
	want.Hostname, want.Hostinfo, want.DiscoKey, want.LastSeen = stale.Hostname, stale.Hostinfo, stale.DiscoKey, stale.LastSeen
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("row after SaveNodeSeen (-want +got):\n%s", diff)
	}
}
