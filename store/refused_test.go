package store

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRefusedRevisions: refused revisions are listed newest first with
// their record as given, survive reopening, and only the newest
// KeptRefused are kept.
func TestRefusedRevisions(t *testing.T) { eachDB(t, testRefusedRevisions) }

func testRefusedRevisions(t *testing.T, db testDB) {
	ctx := context.Background()
	s := db.open(t)
	if err := s.AddRefusedRevision(ctx, RefusedRevision{Commit: "abc"}); err == nil {
		t.Errorf("a refused revision without a value was recorded")
	}
	at := time.Unix(1_700_000_000, 0).UTC()
	for i := range KeptRefused + 5 {
		r := RefusedRevision{Commit: fmt.Sprintf("c%03d", i), Finished: at.Add(time.Duration(i) * time.Second),
			Value: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
		if err := s.AddRefusedRevision(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = db.open(t)
	got, err := s.RefusedRevisions(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != KeptRefused {
		t.Fatalf("%d refused revisions kept, want %d", len(got), KeptRefused)
	}
	newest := KeptRefused + 4
	want := RefusedRevision{ID: got[0].ID, Commit: fmt.Sprintf("c%03d", newest), Finished: at.Add(time.Duration(newest) * time.Second),
		Value: json.RawMessage(fmt.Sprintf(`{"n":%d}`, newest))}
	if diff := cmp.Diff(want, got[0]); diff != "" {
		t.Errorf("newest refused revision (-want +got):\n%s", diff)
	}
	if last := got[len(got)-1].Commit; last != "c005" {
		t.Errorf("oldest kept is %s, want c005", last)
	}
	if two, err := s.RefusedRevisions(ctx, 2); err != nil || len(two) != 2 {
		t.Errorf("limit 2: %d rows, %v", len(two), err)
	}
}
