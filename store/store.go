// Package store is tailplane's durable state: one SQLite database holding the
// applied config, the revision history, registered nodes, auth key use
// counts and the audit log.
//
// The store owns its SQL: every other package reads and writes through
// typed methods, and writes that belong together go through Update, whose
// Tx has the same typed methods inside one transaction. No *sql.DB or
// query leaves the package, and callers need no database/sql to tell
// outcomes apart (a missing row is ErrNotFound). SQLite-specific SQL stays
// in its queries and migrations, so another database can stand behind the
// same methods.
//
//	Open(ctx, stateDir) / OpenFile(ctx, path) / OpenReadOnly(ctx, stateDir)
//	(*Store).Update(ctx, func(tx *Tx) error) error       // one write transaction
//	ConfigObjects (Store, Tx); PutConfigObject, DeleteConfigObject (Tx)
//	AddRevision, LatestRevision (Tx); Revisions, LatestRevision, RevisionPlan (Store)
//	Nodes (Store, Tx); SaveNode (Store, Tx); RegisterNode, DeleteNode (Store)
//	CountAuthKeyUse (Tx); AuthKeyUses, AllAuthKeyUses (Store)
//	AddAudit (Store, Tx); AuditEntries (Store)
//	(*Store).Dump(ctx, w)                                 // every row, for tests
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// FileName is the database file inside a state directory.
const FileName = "tailplane.db"

// Store is an open tailplane database. It is safe for concurrent use.
type Store struct {
	db   *sql.DB
	Path string // the database file
}

// Open opens (creating if needed) the database in stateDir and brings its
// schema up to date. An empty stateDir is an error.
func Open(ctx context.Context, stateDir string) (*Store, error) {
	if stateDir == "" {
		return nil, fmt.Errorf("store: no state directory given")
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: creating state directory: %w", err)
	}
	return OpenFile(ctx, filepath.Join(stateDir, FileName))
}

// OpenFile opens the database at path; see Open.
func OpenFile(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	s := &Store{db: db, Path: path}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// OpenReadOnly opens the existing database in stateDir for reading only:
// it creates no file or directory and runs no migration, so planning never
// touches a server's state (not even SQLite's -wal and -shm files when no
// server has the database open). When stateDir holds no database the error wraps
// fs.ErrNotExist. A database written by a newer tailplane is refused.
func OpenReadOnly(ctx context.Context, stateDir string) (*Store, error) {
	if stateDir == "" {
		return nil, fmt.Errorf("store: no state directory given")
	}
	path := filepath.Join(stateDir, FileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	dsn := "file:" + path + "?mode=ro&_pragma=busy_timeout(10000)"
	if _, err := os.Stat(path + "-wal"); errors.Is(err, fs.ErrNotExist) {
		// No server has the database open (SQLite removes the WAL when the
		// last writer closes): read it as immutable, so that SQLite creates
		// no -wal and -shm files beside it.
		dsn += "&immutable=1"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	s := &Store{db: db, Path: path}
	ms, err := loadMigrations()
	if err != nil {
		db.Close()
		return nil, err
	}
	var current int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: reading schema version of %s: %w (hint: is it a tailplane database?)", path, err)
	}
	if len(ms) > 0 && current > ms[len(ms)-1].version {
		db.Close()
		return nil, fmt.Errorf("store: %s has schema version %d, newer than this binary knows (%d); upgrade tailplane", path, current, ms[len(ms)-1].version)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// migration is one numbered SQL file under migrations/.
type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("store: migration %q is not named NNNN_name.sql", e.Name())
		}
		body, err := fs.ReadFile(migrationFS, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("store: migrations %s and %s share a number", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// migrate applies every migration newer than the database's version, each
// in its own transaction.
func (s *Store) migrate(ctx context.Context) error { return s.migrateUpTo(ctx, math.MaxInt) }

// migrateUpTo is migrate, stopping after migration number last (tests of a
// migration build the schema before it with this).
func (s *Store) migrateUpTo(ctx context.Context, last int) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("store: %s: %w", s.Path, err)
	}
	var current int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("store: reading schema version: %w", err)
	}
	if len(ms) > 0 && current > ms[len(ms)-1].version {
		return fmt.Errorf("store: %s has schema version %d, newer than this binary knows (%d); upgrade tailplane", s.Path, current, ms[len(ms)-1].version)
	}
	for _, m := range ms {
		if m.version <= current || m.version > last {
			continue
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.version, m.name); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: migration %s: %w", m.name, err)
		}
	}
	return nil
}
