package store

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fillStore writes a row into every table through the typed methods, with
// values that differ between the databases' representations (flags, JSON,
// blobs of text, times, IDs with gaps), and returns what it wrote as the
// typed reads see it.
func fillStore(t *testing.T, ctx context.Context, s *Store) storeState {
	t.Helper()
	now := time.Unix(1_700_000_000, 0).UTC()
	err := s.Update(ctx, func(tx *Tx) error {
		for _, o := range []ConfigObject{
			{Kind: "user", Name: "alice@example.com", Value: []byte(`{"name":"Alice","role":"admin"}`)},
			{Kind: "authKey", Name: "team", Value: []byte(`{"reusable":true,"secretHash":"sha256:00"}`)},
		} {
			if err := tx.PutConfigObject(ctx, o); err != nil {
				return err
			}
		}
		if _, err := tx.AddRevision(ctx, Revision{Commit: "c1", Author: "A <a@example.com>", Message: "one\n", CommittedAt: now, AppliedAt: now, Summary: "Plan: 2 to add"}, []byte(`{"changes":[]}`)); err != nil {
			return err
		}
		if _, err := tx.AddRevision(ctx, Revision{Commit: "c2", AppliedAt: now.Add(time.Hour)}, []byte(`{}`)); err != nil {
			return err
		}
		return tx.CountAuthKeyUse(ctx, "sha256:00", 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"one", "two", "three"} {
		n := &Node{StableID: "s" + name, MachineKey: "mkey:" + name, NodeKey: "nodekey:" + name, Hostname: name, GivenName: name,
			UserLogin: "alice@example.com", Tags: []string{"tag:" + name}, IPv4: "100.64.0." + string(rune('1'+i)), Hostinfo: []byte(`{"OS":"linux"}`),
			AuthKey: "team", Ephemeral: i == 1, CreatedAt: now, KeyExpiry: now.Add(24 * time.Hour), LoggedOut: i == 2, PendingApproval: i == 0}
		if err := s.SaveNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	nodes, _ := s.Nodes(ctx)
	if err := s.DeleteNode(ctx, nodes[1].ID); err != nil { // a gap in the IDs
		t.Fatal(err)
	}
	if err := s.SetPrimaryRoutes(ctx, []PrimaryRoute{{Prefix: "10.0.0.0/24", NodeID: nodes[0].ID}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddAudit(ctx, AuditEntry{At: now, Who: "apikey:ci", What: "delete node two", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRefusedRevision(ctx, RefusedRevision{Commit: "c0", Finished: now, Value: []byte(`{"ok":false}`)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ServerState(ctx, "example", func() (string, error) { return "value", nil }); err != nil {
		t.Fatal(err)
	}
	return readState(t, ctx, s)
}

// storeState is everything the typed methods read back.
type storeState struct {
	Objects   []ConfigObject
	Revisions []Revision
	Nodes     []*Node
	Uses      map[string]int
	Primaries []PrimaryRoute
	Audit     []AuditEntry
	Refused   []RefusedRevision
	Plan      string
	State     string
}

func readState(t *testing.T, ctx context.Context, s *Store) storeState {
	t.Helper()
	var st storeState
	var err error
	check := func(e error) {
		if e != nil && err == nil {
			err = e
		}
	}
	st.Objects, err = s.ConfigObjects(ctx)
	var e error
	st.Revisions, e = s.Revisions(ctx, 0)
	check(e)
	st.Nodes, e = s.Nodes(ctx)
	check(e)
	st.Uses, e = s.AllAuthKeyUses(ctx)
	check(e)
	st.Primaries, e = s.PrimaryRoutes(ctx)
	check(e)
	st.Audit, e = s.AuditEntries(ctx, 0)
	check(e)
	st.Refused, e = s.RefusedRevisions(ctx, 0)
	check(e)
	if len(st.Revisions) > 0 {
		plan, e := s.RevisionPlan(ctx, st.Revisions[len(st.Revisions)-1].ID)
		check(e)
		st.Plan = string(plan)
	}
	st.State, _, e = s.ServerState(ctx, "example", func() (string, error) { return "", errors.New("no example state") })
	check(e)
	if err != nil {
		t.Fatalf("reading %s: %v", s.Path, err)
	}
	return st
}

func sortedDump(t *testing.T, ctx context.Context, s *Store) string {
	t.Helper()
	var b bytes.Buffer
	if err := s.Dump(ctx, &b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestCopy: a SQLite database copied into PostgreSQL reads back the same
// through every typed method, and new rows get new IDs there; copied back
// into a new SQLite database it dumps as the original did. A target with
// rows is refused and left as it was, unless Overwrite; a target with a
// live replica's lease is refused even then; and databases at different
// schema versions are refused.
func TestCopy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sqlite := newSQLiteDB(t).open(t)
	want := fillStore(t, ctx, sqlite)
	pgDB := newPostgresDB(t)
	pg := pgDB.open(t)

	copied, err := Copy(ctx, sqlite, pg, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, c := range copied {
		counts[c.Name] = c.Rows
	}
	wantCounts := map[string]int64{"audit": 1, "auth_key_uses": 1, "auth_key_uses_by_name": 0, "config_objects": 2, "nodes": 2,
		"primary_routes": 1, "refused_revisions": 1, "revisions": 2, "server_state": 1}
	for name, n := range wantCounts {
		if counts[name] != n {
			t.Errorf("copied %d rows of table %s; want %d (all copied: %v)", counts[name], name, n, copied)
		}
	}
	if diff := cmp.Diff(want, readState(t, ctx, pg)); diff != "" {
		t.Errorf("PostgreSQL after the copy (-SQLite +PostgreSQL):\n%s", diff)
	}
	n := &Node{StableID: "snew", MachineKey: "m", NodeKey: "nodekey:new", GivenName: "new", CreatedAt: time.Now()}
	if err := pg.SaveNode(ctx, n); err != nil || n.ID <= want.Nodes[len(want.Nodes)-1].ID {
		t.Errorf("a node saved after the copy got ID %d (%v); want one past the copied IDs", n.ID, err)
	}

	before := sortedDump(t, ctx, pg)
	if _, err := Copy(ctx, sqlite, pg, CopyOptions{}); !errors.Is(err, ErrTargetNotEmpty) || !strings.Contains(err.Error(), "nodes (3)") {
		t.Errorf("copying into a database with rows: %v; want ErrTargetNotEmpty naming the tables", err)
	}
	if after := sortedDump(t, ctx, pg); after != before {
		t.Errorf("a refused copy changed the target:\n%s", cmp.Diff(before, after))
	}
	if _, err := Copy(ctx, sqlite, pg, CopyOptions{Overwrite: true}); err != nil {
		t.Fatalf("copying with Overwrite: %v", err)
	}
	if diff := cmp.Diff(want, readState(t, ctx, pg)); diff != "" {
		t.Errorf("PostgreSQL after the overwriting copy (-SQLite +PostgreSQL):\n%s", diff)
	}

	back := newSQLiteDB(t).open(t)
	if _, err := Copy(ctx, pg, back, CopyOptions{}); err != nil {
		t.Fatalf("copying back to SQLite: %v", err)
	}
	if a, b := sortedDump(t, ctx, sqlite), sortedDump(t, ctx, back); a != b {
		t.Errorf("the round trip SQLite → PostgreSQL → SQLite changed the rows (-before +after):\n%s", cmp.Diff(a, b))
	}

	live := pgDB.open(t)
	if _, err := live.Heartbeat(ctx, Beat{Address: "a", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := Copy(ctx, sqlite, pg, CopyOptions{Overwrite: true}); err == nil || !strings.Contains(err.Error(), "live lease") {
		t.Errorf("overwriting a database a replica uses: %v; want a refusal naming the lease", err)
	}

	old := newSQLiteDB(t)
	oldStore := old.openRaw(t)
	if err := oldStore.migrateUpTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := Copy(ctx, oldStore, newPostgresDB(t).open(t), CopyOptions{}); err == nil || !strings.Contains(err.Error(), "schema version 3") {
		t.Errorf("copying from a database at schema version 3: %v; want a refusal naming the versions", err)
	}
}
