package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestAudit: entries are listed newest first; an entry added in a failed
// transaction is rolled back with it; an entry without an action is
// refused.
func TestAudit(t *testing.T) { eachDB(t, testAudit) }

func testAudit(t *testing.T, db testDB) {
	ctx := context.Background()
	s := db.open(t)
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	first := AuditEntry{At: at, Who: "alice@example.com", What: "delete node web1", Result: "ok"}
	if _, err := s.AddAudit(ctx, first); err != nil {
		t.Fatal(err)
	}
	errStop := errors.New("stop")
	err := s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.AddAudit(ctx, AuditEntry{At: at, Who: "apikey:ci", What: "rolled back"}); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Update error = %v, want the function's", err)
	}
	var id int64
	second := AuditEntry{At: at.Add(time.Second), Who: "system", What: "expire node laptop", Result: "node not found"}
	if err := s.Update(ctx, func(tx *Tx) error {
		var err error
		id, err = tx.AddAudit(ctx, second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	first.ID, second.ID = 1, id
	tests := []struct {
		limit int
		want  []AuditEntry
	}{
		{0, []AuditEntry{second, first}},
		{1, []AuditEntry{second}},
		{5, []AuditEntry{second, first}},
	}
	for _, tt := range tests {
		got, err := s.AuditEntries(ctx, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("AuditEntries(%d) (-want +got):\n%s", tt.limit, diff)
		}
	}

	if _, err := s.AddAudit(ctx, AuditEntry{Who: "bob@example.com"}); err == nil || !strings.Contains(err.Error(), "AuditEntry.What") {
		t.Errorf("AddAudit without What: err = %v, want a refusal naming the field", err)
	}
	before := time.Now().Truncate(time.Second)
	if _, err := s.AddAudit(ctx, AuditEntry{What: "now"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.AuditEntries(ctx, 1)
	if err != nil || len(got) != 1 || got[0].At.Before(before) {
		t.Errorf("entry without a time: %v, %v; want one recorded at the current time (not before %v)", got, err, before)
	}
}
