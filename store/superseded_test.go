package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSupersededCommit: a replica applying under the fence may record a
// new commit or the latest one again, but not a commit recorded before and
// superseded since, nor the parent of a recorded one; nothing is recorded
// then. Without the fence (a single
// server, which follows its own remote) and on SQLite, any commit is
// recorded.
func TestSupersededCommit(t *testing.T) { eachDB(t, testSupersededCommit) }

func testSupersededCommit(t *testing.T, db testDB) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := db.open(t)
	if db.dialect == "postgres" {
		if _, err := s.Heartbeat(ctx, Beat{Address: "a", TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	fenced := s.WithApplierFence(ctx)
	record := func(ctx context.Context, commit string) error {
		r := Revision{Commit: commit}
		if commit == "c3" {
			r.Parents = []string{"c2b", "c2"} // a merge of c2b, never applied, and c2
		}
		return s.Update(ctx, func(tx *Tx) error {
			_, err := tx.AddRevision(ctx, r, []byte(`{}`))
			return err
		})
	}
	replica := db.dialect == "postgres"
	for _, step := range []struct {
		commit     string
		fenced     bool
		superseded bool
	}{
		{"c1", true, false},
		{"c2", true, false},
		{"c2", true, false},    // the latest again: allowed (reconcile records nothing then)
		{"c1", true, replica},  // back to c1: refused on replicas
		{"c3", true, false},    // a new commit
		{"c2b", true, replica}, // c3's parent, never applied: refused on replicas
		{"c1", false, false},   // without the fence: a single server's choice
	} {
		c := ctx
		if step.fenced {
			c = fenced
		}
		err := record(c, step.commit)
		if got := errors.Is(err, ErrSuperseded); got != step.superseded || (err != nil && !got) {
			t.Errorf("recording %s (fenced %v): %v; want superseded %v", step.commit, step.fenced, err, step.superseded)
		}
	}
	revs, err := s.Revisions(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range revs {
		got = append(got, r.Commit)
	}
	want := []string{"c1", "c3", "c2", "c2", "c1"}
	if !replica {
		want = []string{"c1", "c2b", "c3", "c1", "c2", "c2", "c1"}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recorded revisions, newest first (-want +got):\n%s", diff)
	}
}
