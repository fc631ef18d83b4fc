package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMigrationAuthKeyUsesByHash: migration 0004 moves each key name's use
// count to the secretHash the applied config declares under that name,
// adding up names that share a hash, and keeps the counts of names the
// config no longer declares in auth_key_uses_by_name.
func TestMigrationAuthKeyUsesByHash(t *testing.T) {
	ctx := context.Background()
	db, path := databaseAt(t, 3)
	authKey := func(hash string) string {
		return `{"user":"alice@example.com","tags":[],"reusable":false,"ephemeral":false,"preauthorized":true,"expires":"","uses":0,"secretHash":"` + hash + `"}`
	}
	objects := map[string]string{
		"laptop":  authKey(hashA),
		"laptop2": authKey("sha256:" + strings.ToUpper(hashA[7:])), // the same secret under a second name, in upper case
		"servers": authKey(hashB),
		"unused":  authKey("sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"),
	}
	for name, v := range objects {
		if _, err := db.ExecContext(ctx, `INSERT INTO config_objects (kind, name, value) VALUES ('authKey', ?, ?)`, name, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO config_objects (kind, name, value) VALUES ('user', 'laptop', '{"name":"","role":"member"}')`); err != nil {
		t.Fatal(err)
	}
	for name, uses := range map[string]int{"laptop": 1, "laptop2": 2, "servers": 7, "gone": 4} {
		if _, err := db.ExecContext(ctx, `INSERT INTO auth_key_uses (name, uses) VALUES (?, ?)`, name, uses); err != nil {
			t.Fatal(err)
		}
	}
	s := migrated(t, db, path)
	got := map[string]int{}
	rows, err := s.db.QueryContext(ctx, `SELECT secret_hash, uses FROM auth_key_uses`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var h string
		var n int
		if err := rows.Scan(&h, &n); err != nil {
			t.Fatal(err)
		}
		got[h] = n
	}
	rows.Close()
	if diff := cmp.Diff(map[string]int{hashA: 3, hashB: 7}, got); diff != "" {
		t.Errorf("auth_key_uses after migration (-want +got):\n%s", diff)
	}
	var gone int
	if err := s.db.QueryRowContext(ctx, `SELECT uses FROM auth_key_uses_by_name WHERE name = 'gone'`).Scan(&gone); err != nil || gone != 4 {
		t.Errorf("count of the undeclared name gone: %d, %v; want 4 kept", gone, err)
	}
	var left int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM auth_key_uses_by_name`).Scan(&left); err != nil || left != 1 {
		t.Errorf("auth_key_uses_by_name holds %d rows (%v), want only gone's", left, err)
	}
	var nobj int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM config_objects`).Scan(&nobj); err != nil || nobj != len(objects)+1 {
		t.Errorf("config_objects holds %d rows (%v), want %d untouched", nobj, err, len(objects)+1)
	}
	// The migrated count is the one registration checks.
	n := &Node{StableID: "n1", MachineKey: "m", NodeKey: "k1", GivenName: "n1"}
	if err := s.RegisterNode(ctx, n, hashA, 3); !errors.Is(err, ErrAuthKeyUsedUp) {
		t.Errorf("registering with a secret used 3 times, limit 3: err = %v, want ErrAuthKeyUsedUp", err)
	}
}

// TestMigrationNodeApproval: migration 0007 adds pending_approval, and a
// node stored before it (when every node was authorized) reads as approved.
func TestMigrationNodeApproval(t *testing.T) {
	ctx := context.Background()
	db, path := databaseAt(t, 6)
	if _, err := db.ExecContext(ctx, `INSERT INTO nodes (stable_id, machine_key, node_key, given_name, created_at)
		VALUES ('n1', 'mkey:1', 'nodekey:1', 'web', 1)`); err != nil {
		t.Fatal(err)
	}
	nodes, err := migrated(t, db, path).Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].PendingApproval {
		t.Fatalf("nodes after migration: %+v, %v; want web, not pending", nodes, err)
	}
}

// databaseAt creates a database migrated up to migration number last and
// returns it open, with its path; the test writes the old state into it,
// closes it and opens the path with OpenFile to run the later migrations.
func databaseAt(t *testing.T, last int) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Store{db: db, Path: path}).migrateUpTo(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	return db, path
}

// migrated closes db, a database made by databaseAt, and opens it with
// OpenFile, which runs the later migrations, until the test ends.
func migrated(t *testing.T, db *sql.DB, path string) *Store {
	t.Helper()
	db.Close()
	s, err := OpenFile(context.Background(), path)
	if err != nil {
		t.Fatalf("migrating: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
