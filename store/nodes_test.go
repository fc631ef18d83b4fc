package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Secret hashes as a config declares them.
const (
	hashA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	hashB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
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
	if err := s.RegisterNode(ctx, n, hashA, 0); err != nil {
		t.Fatal(err)
	}
	if n.ID == 0 {
		t.Fatal("RegisterNode did not assign an ID")
	}
	n.LoggedOut = true
	n.PendingApproval = true
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
	if uses, _ := s.AuthKeyUses(ctx, hashA); uses != 1 {
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
		if err := s.RegisterNode(ctx, n, hashA, 2); !errors.Is(err, wantErr) {
			t.Fatalf("registration %d: err = %v, want %v", i, err, wantErr)
		}
	}
	if got, _ := s.Nodes(ctx); len(got) != 2 {
		t.Errorf("stored %d nodes, want 2 (the refused one must not be stored)", len(got))
	}
}

// TestAuthKeyUsesBySecret: uses are counted per secretHash, in lowercase,
// whatever the key's name.
func TestAuthKeyUsesBySecret(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	register := func(i int, hash string, limit int) error {
		name := string(rune('a' + i))
		return s.RegisterNode(ctx, &Node{StableID: name, MachineKey: "m", NodeKey: name, GivenName: name, CreatedAt: time.Now()}, hash, limit)
	}
	if err := register(0, hashA, 1); err != nil {
		t.Fatal(err)
	}
	if err := register(1, strings.ToUpper(hashA[:7])+strings.ToUpper(hashA[7:]), 1); !errors.Is(err, ErrAuthKeyUsedUp) {
		t.Errorf("second use of a one-shot secret in upper case: err = %v, want ErrAuthKeyUsedUp", err)
	}
	if err := register(2, hashB, 1); err != nil {
		t.Errorf("first use of another secret: %v", err)
	}
	got := map[string]int{}
	for _, h := range []string{hashA, hashB, strings.ToUpper(hashA)} {
		if got[h], err = s.AuthKeyUses(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{hashA: 1, hashB: 1, strings.ToUpper(hashA): 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("uses (-want +got):\n%s", diff)
	}
}
