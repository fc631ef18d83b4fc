package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/internal/testkit"
)

// TestServerState: two handles creating the same value at once both get
// one value, which exactly one of them created; later reads get it too.
func TestServerState(t *testing.T) { eachDB(t, testServerState) }

func testServerState(t *testing.T, db testDB) {
	ctx := context.Background()
	stores := []*Store{db.open(t), db.open(t)}
	for round := range 10 {
		name := fmt.Sprintf("key-%d", round)
		values := make([]string, 2)
		createdBy := make([]bool, 2)
		errs := race(stores, func(i int, s *Store) error {
			var err error
			values[i], createdBy[i], err = s.ServerState(ctx, name, func() (string, error) { return fmt.Sprintf("made by %d", i), nil })
			return err
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if values[0] != values[1] || createdBy[0] == createdBy[1] {
			t.Fatalf("round %d: the handles got %q (created %v); want one value, created by one handle", round, values, createdBy)
		}
		again, created, err := stores[1].ServerState(ctx, name, func() (string, error) { return "", errors.New("must not be called") })
		if err != nil || created || again != values[0] {
			t.Fatalf("round %d: reading again: %q, %v, %v; want %q", round, again, created, err, values[0])
		}
	}
	failing := errors.New("no randomness")
	if _, _, err := stores[0].ServerState(ctx, "broken", func() (string, error) { return "", failing }); !errors.Is(err, failing) {
		t.Errorf("a failing create: %v; want its error", err)
	}
}

// TestReplicasNeedPostgres: on SQLite the replica methods say they need
// PostgreSQL, and the fence changes nothing.
func TestReplicasNeedPostgres(t *testing.T) {
	ctx := context.Background()
	s := newSQLiteDB(t).open(t)
	if s.ReplicaID() != "" {
		t.Errorf("ReplicaID on SQLite: %q; want none", s.ReplicaID())
	}
	if _, err := s.Heartbeat(ctx, Beat{TTL: time.Second}); !errors.Is(err, ErrSingleServer) {
		t.Errorf("Heartbeat: %v; want ErrSingleServer", err)
	}
	if _, err := s.Listen(ctx); !errors.Is(err, ErrSingleServer) {
		t.Errorf("Listen: %v; want ErrSingleServer", err)
	}
	if err := s.Notify(ctx, "x", "y"); !errors.Is(err, ErrSingleServer) {
		t.Errorf("Notify: %v; want ErrSingleServer", err)
	}
	if err := s.Update(s.WithApplierFence(ctx), func(*Tx) error { return nil }); err != nil {
		t.Errorf("an Update under the fence on SQLite: %v", err)
	}
}

// TestReplicaLeases: the replica that started first applies; the fence
// lets only it write; when its lease lapses the next one takes over.
func TestReplicaLeases(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := newPostgresDB(t)
	first, second := db.open(t), db.open(t)
	if _, err := first.Heartbeat(ctx, Beat{Address: "http://a", Nodes: 2, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	rs, err := second.Heartbeat(ctx, Beat{Address: "http://b", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID, Address   string
		Nodes         int
		Live, Applier bool
	}
	rows := func(rs []Replica) []row {
		var out []row
		for _, r := range rs {
			out = append(out, row{r.ID, r.Address, r.Nodes, r.Live, r.Applier})
		}
		return out
	}
	want := []row{{first.ReplicaID(), "http://a", 2, true, true}, {second.ReplicaID(), "http://b", 0, true, false}}
	if diff := cmp.Diff(want, rows(rs)); diff != "" {
		t.Errorf("replicas (-want +got):\n%s", diff)
	}
	write := func(s *Store) error {
		return s.Update(s.WithApplierFence(ctx), func(tx *Tx) error {
			return tx.PutConfigObject(ctx, ConfigObject{Kind: "user", Name: s.ReplicaID(), Value: []byte(`{}`)})
		})
	}
	if err := write(second); !errors.Is(err, ErrNotApplier) {
		t.Errorf("the second replica wrote under the fence: %v; want ErrNotApplier", err)
	}
	if err := write(first); err != nil {
		t.Errorf("the applier under the fence: %v", err)
	}
	// The first replica's lease lapses (it stops beating, as a dead one does).
	if _, err := first.Heartbeat(ctx, Beat{Address: "http://a", TTL: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, ctx, "the second replica to become the applier", func() (bool, string) {
		rs, err := second.Replicas(ctx)
		return err == nil && len(rs) == 2 && !rs[0].Live && rs[1].Applier, fmt.Sprintf("%+v %v", rows(rs), err)
	})
	if err := write(first); !errors.Is(err, ErrNotApplier) {
		t.Errorf("the lapsed replica wrote under the fence: %v; want ErrNotApplier", err)
	}
	if err := write(second); err != nil {
		t.Errorf("the new applier under the fence: %v", err)
	}
	objs, err := first.ConfigObjects(ctx)
	if err != nil || len(objs) != 2 || objs[0].Name == objs[1].Name {
		t.Errorf("config objects %+v (%v); want one from each applier", objs, err)
	}
	// The first comes back (it was paused, say): it starts anew, last in
	// line, and the second keeps applying.
	if _, err := first.Heartbeat(ctx, Beat{Address: "http://a", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if rs, err := first.Replicas(ctx); err != nil || len(rs) != 2 || rs[0].ID != second.ReplicaID() || !rs[0].Applier || !rs[1].Live || rs[1].Applier {
		t.Errorf("after the first renewed its lapsed lease: %+v (%v); want the second applying, the first live behind it", rows(rs), err)
	}
	// The second stops cleanly: its row goes at once.
	if err := second.LeaveReplicas(ctx); err != nil {
		t.Fatal(err)
	}
	if rs, err := first.Replicas(ctx); err != nil || len(rs) != 1 || rs[0].ID != first.ReplicaID() {
		t.Errorf("after the second left: %+v (%v); want the first's row only", rows(rs), err)
	}
}

// TestNotifications: a node saved or deleted, and a revision recorded,
// notify the other handles' listeners when their transaction commits,
// never the sender's own; a rolled back write notifies nobody; a body
// over the limit is refused.
func TestNotifications(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := newPostgresDB(t)
	a, b := db.open(t), db.open(t)
	la, err := a.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer la.Close()
	lb, err := b.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	n := &Node{StableID: "s1", MachineKey: "m", NodeKey: "k1", GivenName: "one", CreatedAt: time.Now()}
	if err := a.SaveNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	rollback := errors.New("rolled back")
	if err := a.Update(ctx, func(tx *Tx) error {
		tx.SaveNode(ctx, &Node{StableID: "s2", MachineKey: "m", NodeKey: "k2", GivenName: "two", CreatedAt: time.Now()})
		return rollback
	}); !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	var revID int64
	if err := a.Update(ctx, func(tx *Tx) error {
		var err error
		revID, err = tx.AddRevision(ctx, Revision{Commit: "c1"}, []byte(`{}`))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteNode(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteNode(ctx, n.ID); err != nil { // gone already: no notification
		t.Fatal(err)
	}
	if err := a.Notify(ctx, "hello", "there"); err != nil {
		t.Fatal(err)
	}
	if err := a.Notify(ctx, "big", strings.Repeat("x", MaxNotifyBody+1)); err == nil || !strings.Contains(err.Error(), "batches") {
		t.Errorf("an oversized notification: %v; want it refused", err)
	}
	id := fmt.Sprint(n.ID)
	want := []Notification{
		{NotifyNode, a.ReplicaID(), id},
		{NotifyRevision, a.ReplicaID(), fmt.Sprint(revID)},
		{NotifyNode, a.ReplicaID(), id},
		{"hello", a.ReplicaID(), "there"},
	}
	var got []Notification
	for range want {
		n, err := lb.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
	if rev, by, err := b.AppliedBy(ctx); rev != revID || by != a.ReplicaID() || err != nil {
		t.Errorf("AppliedBy: %d, %q, %v; want %d by %s", rev, by, err, revID, a.ReplicaID())
	}
	// a's own listener got none of them: the next it gets is b's.
	if err := b.Notify(ctx, "ping", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := la.Next(ctx); err != nil || got != (Notification{"ping", b.ReplicaID(), ""}) {
		t.Errorf("a's listener got %+v, %v; want only b's ping", got, err)
	}
}

// TestNodeConflict: saving a node whose address or name another node has
// fails with ErrConflict on both dialects, and stores nothing.
func TestNodeConflict(t *testing.T) { eachDB(t, testNodeConflict) }

func testNodeConflict(t *testing.T, db testDB) {
	ctx := context.Background()
	s := db.open(t)
	first := &Node{StableID: "s1", MachineKey: "m1", NodeKey: "k1", GivenName: "one", IPv4: "100.64.0.1", IPv6: "fd7a:115c:a1e0::1", CreatedAt: time.Now()}
	if err := s.SaveNode(ctx, first); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		node Node
	}{
		{"same IPv4", Node{StableID: "s2", MachineKey: "m2", NodeKey: "k2", GivenName: "two", IPv4: "100.64.0.1", CreatedAt: time.Now()}},
		{"same IPv6", Node{StableID: "s3", MachineKey: "m3", NodeKey: "k3", GivenName: "three", IPv6: "fd7a:115c:a1e0::1", CreatedAt: time.Now()}},
		{"same name", Node{StableID: "s4", MachineKey: "m4", NodeKey: "k4", GivenName: "one", CreatedAt: time.Now()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.node
			if err := s.RegisterNode(ctx, &n, "sha256:"+strings.Repeat("ab", 32), 0); !errors.Is(err, ErrConflict) {
				t.Errorf("RegisterNode: %v; want ErrConflict", err)
			}
		})
	}
	if nodes, err := s.Nodes(ctx); err != nil || len(nodes) != 1 {
		t.Errorf("after the conflicts: %d nodes (%v); want the first only", len(nodes), err)
	}
	if uses, err := s.AuthKeyUses(ctx, "sha256:"+strings.Repeat("ab", 32)); uses != 0 || err != nil {
		t.Errorf("the refused registrations counted %d uses (%v); want none", uses, err)
	}
}

// TestNodeByID: one node read by its ID, and ErrNotFound for none.
func TestNodeByID(t *testing.T) { eachDB(t, testNodeByID) }

func testNodeByID(t *testing.T, db testDB) {
	ctx := context.Background()
	s := db.open(t)
	for _, name := range []string{"one", "two"} {
		if err := s.SaveNode(ctx, &Node{StableID: name, MachineKey: "m", NodeKey: name, GivenName: name, Tags: []string{"tag:x"}, CreatedAt: time.Unix(1700000000, 0).UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.NodeByID(ctx, all[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(all[1], got); diff != "" {
		t.Errorf("NodeByID (-Nodes +NodeByID):\n%s", diff)
	}
	if _, err := s.NodeByID(ctx, all[1].ID+100); !errors.Is(err, ErrNotFound) {
		t.Errorf("NodeByID of no node: %v; want ErrNotFound", err)
	}
}
