package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNodesRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n := &Node{
		StableID: "nabc", MachineKey: "mkey:01", NodeKey: "nodekey:01", Hostname: "laptop", GivenName: "laptop",
		UserLogin: "alice@example.com", Tags: []string{}, IPv4: "100.64.0.1", IPv6: "fd7a:115c:a1e0::1",
		Hostinfo: []byte(`{"Hostname":"laptop"}`), AuthKey: "alice", CreatedAt: created, KeyExpiry: created.Add(time.Hour),
	}
	if err := s.RegisterNode(ctx, n, "alice", 0); err != nil {
		t.Fatal(err)
	}
	if n.ID == 0 {
		t.Fatal("RegisterNode did not assign an ID")
	}
	n.LoggedOut = true
	if err := s.SaveNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]*Node{n}, got); diff != "" {
		t.Errorf("nodes after reopen (-want +got):\n%s", diff)
	}
	if uses, _ := s.AuthKeyUses(ctx, "alice"); uses != 1 {
		t.Errorf("alice uses = %d, want 1", uses)
	}
	if err := s.DeleteNode(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Nodes(ctx); len(got) != 0 {
		t.Errorf("nodes after delete = %v, want none", got)
	}
}

func TestRegisterNodeUseLimit(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, wantErr := range []error{nil, nil, ErrAuthKeyUsedUp} {
		n := &Node{StableID: string(rune('a' + i)), MachineKey: "m", NodeKey: string(rune('a' + i)), GivenName: string(rune('a' + i)), CreatedAt: time.Now()}
		if err := s.RegisterNode(ctx, n, "k", 2); !errors.Is(err, wantErr) {
			t.Fatalf("registration %d: err = %v, want %v", i, err, wantErr)
		}
	}
	if got, _ := s.Nodes(ctx); len(got) != 2 {
		t.Errorf("stored %d nodes, want 2 (the refused one must not be stored)", len(got))
	}
}
