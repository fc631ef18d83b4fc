package store

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPrimaryRoutesRoundTrip(t *testing.T) { eachDB(t, testPrimaryRoutesRoundTrip) }

func testPrimaryRoutesRoundTrip(t *testing.T, db testDB) {
	ctx := context.Background()
	s := db.open(t)
	if got, err := s.PrimaryRoutes(ctx); err != nil || len(got) != 0 {
		t.Fatalf("fresh store: PrimaryRoutes = %v, %v; want none", got, err)
	}
	first := []PrimaryRoute{
		{Prefix: "10.0.0.0/24", NodeID: 2},
		{Prefix: "10.0.0.0/24", Via: "tag:a,tag:b", NodeID: 3},
		{Prefix: "192.168.0.0/16", NodeID: 1},
	}
	if err := s.SetPrimaryRoutes(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := []PrimaryRoute{
		{Prefix: "10.0.0.0/24", NodeID: 5},
		{Prefix: "fd00::/64", NodeID: 4},
	}
	if err := s.SetPrimaryRoutes(ctx, second); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = db.open(t)
	got, err := s.PrimaryRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(second, got); diff != "" {
		t.Errorf("primary routes after replace and reopen (-want +got):\n%s", diff)
	}

	err = s.SetPrimaryRoutes(ctx, []PrimaryRoute{{Prefix: "10.1.0.0/24", NodeID: 7}, {NodeID: 8}})
	if err == nil || !strings.Contains(err.Error(), "no prefix") {
		t.Errorf("SetPrimaryRoutes without a prefix: %v, want an error saying so", err)
	}
	if got, _ := s.PrimaryRoutes(ctx); !cmp.Equal(second, got) {
		t.Errorf("a rejected SetPrimaryRoutes changed the saved routes to %v", got)
	}
	if err := s.SetPrimaryRoutes(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.PrimaryRoutes(ctx); len(got) != 0 {
		t.Errorf("after clearing: %v, want none", got)
	}
}
