package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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

// TestPrimaryRoutesAmongReplicas: under the applier fence only the
// replica that applies revisions (the one deciding the elections) saves
// primary routes, and the other replicas are notified when it does; the
// refused write changes nothing and notifies nobody.
func TestPrimaryRoutesAmongReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := newPostgresDB(t)
	decider, follower := db.open(t), db.open(t)
	for _, s := range []*Store{decider, follower} {
		if _, err := s.Heartbeat(ctx, Beat{TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := follower.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ld, err := decider.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	theirs := []PrimaryRoute{{Prefix: "10.0.0.0/24", NodeID: 2}}
	if err := follower.SetPrimaryRoutes(follower.WithApplierFence(ctx), []PrimaryRoute{{Prefix: "10.0.0.0/24", NodeID: 3}}); !errors.Is(err, ErrNotApplier) {
		t.Errorf("the follower saved primary routes under the fence: %v; want ErrNotApplier", err)
	}
	if err := decider.SetPrimaryRoutes(decider.WithApplierFence(ctx), theirs); err != nil {
		t.Fatal(err)
	}
	n, err := l.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Notification{NotifyPrimaries, decider.ReplicaID(), ""}); n != want {
		t.Errorf("the follower was notified %+v; want %+v", n, want)
	}
	if got, err := follower.PrimaryRoutes(ctx); err != nil || !cmp.Equal(theirs, got) {
		t.Errorf("the follower reads %v (%v); want the decider's %v", got, err, theirs)
	}
	// The decider heard nothing of the refused write: the first it hears
	// is the follower's ping.
	if err := follower.Notify(ctx, "ping", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := ld.Next(ctx); err != nil || got != (Notification{"ping", follower.ReplicaID(), ""}) {
		t.Errorf("the decider's listener got %+v, %v; want only the follower's ping", got, err)
	}
}
