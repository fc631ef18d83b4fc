package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// openTest opens a fresh SQLite store, closed when the test ends. Tests
// written with eachDB (testdb_test.go) run on PostgreSQL too.
func openTest(t *testing.T) *Store { t.Helper(); return newSQLiteDB(t).open(t) }

func dump(t *testing.T, s *Store) string {
	t.Helper()
	var b strings.Builder
	if err := s.Dump(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestUpdate: a transaction's writes are visible to itself, committed
// together when fn returns nil and all rolled back when it fails.
func TestUpdate(t *testing.T) { eachDB(t, testUpdate) }

func testUpdate(t *testing.T, db testDB) {
	ctx := context.Background()
	errStop := errors.New("stop")
	tests := []struct {
		name    string
		fail    error // returned by fn after writing
		wantErr error
		want    []ConfigObject
	}{
		{"commit", nil, nil, []ConfigObject{{"user", "a@b", json.RawMessage(`{"role":"admin"}`)}, {"user", "c@d", json.RawMessage(`{}`)}}},
		{"rollback", errStop, errStop, []ConfigObject{{"user", "a@b", json.RawMessage(`{}`)}, {"user", "gone@b", json.RawMessage(`{}`)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := db.fresh(t).open(t)
			err := s.Update(ctx, func(tx *Tx) error {
				for _, o := range []ConfigObject{{"user", "a@b", json.RawMessage(`{}`)}, {"user", "gone@b", json.RawMessage(`{}`)}} {
					if err := tx.PutConfigObject(ctx, o); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			before := dump(t, s)
			err = s.Update(ctx, func(tx *Tx) error {
				if err := tx.PutConfigObject(ctx, ConfigObject{"user", "a@b", json.RawMessage(`{"role":"admin"}`)}); err != nil {
					return err
				}
				if err := tx.PutConfigObject(ctx, ConfigObject{"user", "c@d", json.RawMessage(`{}`)}); err != nil {
					return err
				}
				if err := tx.DeleteConfigObject(ctx, "user", "gone@b"); err != nil {
					return err
				}
				if err := tx.DeleteConfigObject(ctx, "user", "never@b"); err != nil {
					return err
				}
				if _, err := tx.AddRevision(ctx, Revision{Commit: "c1"}, json.RawMessage(`{}`)); err != nil {
					return err
				}
				seen, err := tx.ConfigObjects(ctx)
				if err != nil {
					return err
				}
				if len(seen) != 2 {
					t.Errorf("the transaction sees %d objects of its own, want 2: %v", len(seen), seen)
				}
				return tt.fail
			})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Update error = %v, want %v", err, tt.wantErr)
			}
			got, err := s.ConfigObjects(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sortConfig(got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config objects after Update (-want +got):\n%s", diff)
			}
			if tt.fail != nil {
				if diff := cmp.Diff(before, dump(t, s)); diff != "" {
					t.Errorf("a failed Update changed the database (-before +after):\n%s", diff)
				}
			}
		})
	}
}

func sortConfig(objs []ConfigObject) {
	slices.SortFunc(objs, func(a, b ConfigObject) int {
		return strings.Compare(a.Kind+"\x00"+a.Name, b.Kind+"\x00"+b.Name)
	})
}

func TestRevisions(t *testing.T) { eachDB(t, testRevisions) }

func testRevisions(t *testing.T, db testDB) {
	ctx := context.Background()
	s := db.open(t)
	if _, ok, err := s.LatestRevision(ctx); ok || err != nil {
		t.Fatalf("LatestRevision of a new store = %v, %v; want none", ok, err)
	}
	committed := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	applied := committed.Add(time.Minute)
	in := []Revision{
		{Commit: "c1", Author: "Alice <alice@example.com>", Message: "first", CommittedAt: committed, AppliedAt: applied, Summary: "Plan: 1 to add, 0 to change, 0 to destroy."},
		{Commit: "c2", AppliedAt: applied.Add(time.Minute), Summary: "No changes."},
	}
	for i, r := range in {
		err := s.Update(ctx, func(tx *Tx) error {
			id, err := tx.AddRevision(ctx, r, json.RawMessage(`{"n":`+string(rune('1'+i))+`}`))
			if id != int64(i+1) {
				t.Errorf("revision %s got ID %d, want %d", r.Commit, id, i+1)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	in[0].ID, in[1].ID = 1, 2
	got, err := s.Revisions(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Revision{in[1], in[0]}, got); diff != "" {
		t.Errorf("Revisions (-want +got):\n%s", diff)
	}
	if got, _ := s.Revisions(ctx, 1); len(got) != 1 || got[0].Commit != "c2" {
		t.Errorf("Revisions(1) = %v, want c2 only", got)
	}
	var inTx Revision
	if err := s.Update(ctx, func(tx *Tx) error {
		var err error
		inTx, _, err = tx.LatestRevision(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	latest, ok, err := s.LatestRevision(ctx)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if diff := cmp.Diff([]Revision{in[1], in[1]}, []Revision{latest, inTx}); diff != "" {
		t.Errorf("LatestRevision of the store, of a transaction (-want +got):\n%s", diff)
	}
	plan, err := s.RevisionPlan(ctx, 1)
	if err != nil || string(plan) != `{"n":1}` {
		t.Errorf("RevisionPlan(1) = %s, %v", plan, err)
	}
	if _, err := s.RevisionPlan(ctx, 99); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevisionPlan(missing) error = %v, want ErrNotFound", err)
	}
}

// TestAddRevisionAppliedNow: a revision without an applied time is
// recorded at the current time.
func TestAddRevisionAppliedNow(t *testing.T) { eachDB(t, testAddRevisionAppliedNow) }

func testAddRevisionAppliedNow(t *testing.T, db testDB) {
	ctx := context.Background()
	s := db.open(t)
	before := time.Now().Truncate(time.Second)
	if err := s.Update(ctx, func(tx *Tx) error {
		_, err := tx.AddRevision(ctx, Revision{Commit: "c1"}, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r, _, err := s.LatestRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.AppliedAt.Before(before) || !r.CommittedAt.IsZero() {
		t.Errorf("recorded applied %v (want not before %v), committed %v (want zero)", r.AppliedAt, before, r.CommittedAt)
	}
}

func TestAllAuthKeyUses(t *testing.T) { eachDB(t, testAllAuthKeyUses) }

func testAllAuthKeyUses(t *testing.T, db testDB) {
	ctx := context.Background()
	s := db.open(t)
	err := s.Update(ctx, func(tx *Tx) error {
		for _, h := range []string{hashA, strings.ToUpper(hashA), hashB} {
			if err := tx.CountAuthKeyUse(ctx, h, 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.AllAuthKeyUses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{hashA: 2, hashB: 1}, got); diff != "" {
		t.Errorf("AllAuthKeyUses (-want +got):\n%s", diff)
	}
}
