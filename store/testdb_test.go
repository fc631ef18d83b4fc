package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tailplane/tailplane/internal/testkit"
)

// The store's tests run on every dialect: a test written as
//
//	func TestX(t *testing.T) { eachDB(t, testX) }
//	func testX(t *testing.T, db testDB) { s := db.open(t); ... }
//
// runs as TestX/sqlite and TestX/postgres, the latter on a throwaway
// PostgreSQL cluster the test binary starts on first use and stops in
// TestMain. Without PostgreSQL installed the postgres subtests fail with
// an install hint.
func TestMain(m *testing.M) {
	code := m.Run()
	testkit.StopSharedPostgres()
	os.Exit(code)
}

// testDB is one empty database of one dialect, for one test.
type testDB struct {
	dialect string // "sqlite" or "postgres"
	// connect opens the database (again: each call is one more handle on
	// the same database, as a restarted server or a second one gets).
	connect func(ctx context.Context) (*Store, error)
	// raw is connect without migrating (tests of a migration build the
	// schema before it with migrateUpTo).
	raw func(ctx context.Context) (*Store, error)
}

// eachDB runs f as one subtest per dialect, each on a fresh database.
func eachDB(t *testing.T, f func(t *testing.T, db testDB)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newSQLiteDB(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, newPostgresDB(t)) })
}

func newSQLiteDB(t *testing.T) testDB {
	dir := t.TempDir()
	return testDB{
		dialect: "sqlite",
		connect: func(ctx context.Context) (*Store, error) { return Open(ctx, dir) },
		raw:     func(context.Context) (*Store, error) { return openSQLite(filepath.Join(dir, FileName)) },
	}
}

func newPostgresDB(t *testing.T) testDB {
	url := testkit.SharedPostgres(t).NewDatabase(t)
	return testDB{
		dialect: "postgres",
		connect: func(ctx context.Context) (*Store, error) { return OpenPostgres(ctx, url) },
		raw: func(ctx context.Context) (*Store, error) {
			s, _, err := connectPostgres(ctx, url)
			return s, err
		},
	}
}

// fresh returns another empty database of db's dialect (for subtests).
func (db testDB) fresh(t *testing.T) testDB {
	if db.dialect == "postgres" {
		return newPostgresDB(t)
	}
	return newSQLiteDB(t)
}

// open is connect, closing the store when the test ends; a failure
// fails t.
func (db testDB) open(t *testing.T) *Store { t.Helper(); return mustOpen(t, db.connect) }

// openRaw is open without migrating.
func (db testDB) openRaw(t *testing.T) *Store { t.Helper(); return mustOpen(t, db.raw) }

func mustOpen(t *testing.T, open func(context.Context) (*Store, error)) *Store {
	t.Helper()
	s, err := open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
