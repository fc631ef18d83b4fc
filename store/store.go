// Package store is tailplane's durable state: one database holding the
// applied config, the revision history, registered nodes, auth key use
// counts and the audit log. It is SQLite (a file in the state directory)
// by default, or PostgreSQL (OpenPostgres).
//
// The store owns its SQL: every other package reads and writes through
// typed methods, and writes that belong together go through Update, whose
// Tx has the same typed methods inside one transaction. No *sql.DB or
// query leaves the package, and callers need no database/sql to tell
// outcomes apart (a missing row is ErrNotFound). Queries are written once,
// in SQL both databases understand, with ? placeholders (rewritten for
// PostgreSQL, see dialect); what differs lives in per-dialect migration
// files (see loadMigrations): column types, identity columns, JSON
// functions. Times are unix seconds in integer columns and booleans are
// BOOLEAN on PostgreSQL and 0/1 on SQLite, so the Go side is the same.
//
//	Open(ctx, stateDir) / OpenFile(ctx, path) / OpenReadOnly(ctx, stateDir)
//	OpenPostgres(ctx, url); RedactURL(url)
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
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// FileName is the database file inside a state directory.
const FileName = "tailplane.db"

// Store is an open tailplane database. It is safe for concurrent use.
type Store struct {
	db   db
	Path string // the database file; for PostgreSQL its URL without the password (see RedactURL)
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
	s, err := openSQLite(path)
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openSQLite opens the database at path for writing, as it is.
func openSQLite(path string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	sqlDB, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	return &Store{db: db{sql: sqlDB, d: sqliteDialect}, Path: path}, nil
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
	sqlDB, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	s := &Store{db: db{sql: sqlDB, d: sqliteDialect}, Path: path}
	ms, err := loadMigrations(sqliteDialect)
	if err != nil {
		sqlDB.Close()
		return nil, err
	}
	var current int
	if err := sqlDB.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("store: reading schema version of %s: %w (hint: is it a tailplane database?)", path, err)
	}
	if len(ms) > 0 && current > ms[len(ms)-1].version {
		sqlDB.Close()
		return nil, fmt.Errorf("store: %s has schema version %d, newer than this binary knows (%d); upgrade tailplane", path, current, ms[len(ms)-1].version)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// migration is one numbered migration as one dialect runs it.
type migration struct {
	version int
	name    string // "NNNN_name.sql", whatever the dialect: what schema_migrations records
	file    string // the file under migrations/ that holds sql
	sql     string
}

// dialects are the names of the dialects every migration must cover.
var dialects = []string{sqliteDialect.name, postgresDialect.name}

// loadMigrations reads the migrations d runs. Migrations are numbered
// files under migrations/, applied in order, each once:
//
//	NNNN_name.sql                                  the same SQL on every dialect
//	NNNN_name.sqlite.sql and NNNN_name.postgres.sql  where the SQL differs
//
// A number has either the one file or one file per dialect, all with the
// same name; anything else is an error, whichever dialect is opened.
func loadMigrations(d *dialect) ([]migration, error) { return migrationsIn(migrationFS, d) }

// migrationsIn is loadMigrations reading fsys's directory migrations/.
func migrationsIn(fsys fs.FS, d *dialect) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, err
	}
	byVersion := map[int]map[string]migration{} // version → dialect ("" for all) → file
	for _, e := range entries {
		num, rest, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(rest, ".sql") {
			return nil, fmt.Errorf("store: migration %q is not named NNNN_name.sql (or NNNN_name.DIALECT.sql)", e.Name())
		}
		base, variant := strings.TrimSuffix(rest, ".sql"), ""
		if i := strings.LastIndexByte(base, '.'); i >= 0 {
			base, variant = base[:i], base[i+1:]
			if !slices.Contains(dialects, variant) {
				return nil, fmt.Errorf("store: migration %q is for dialect %q; there are only %v", e.Name(), variant, dialects)
			}
		}
		body, err := fs.ReadFile(fsys, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		if byVersion[v] == nil {
			byVersion[v] = map[string]migration{}
		}
		if prev, ok := byVersion[v][variant]; ok {
			return nil, fmt.Errorf("store: migrations %s and %s share a number", prev.file, e.Name())
		}
		byVersion[v][variant] = migration{version: v, name: num + "_" + base + ".sql", file: e.Name(), sql: string(body)}
	}
	var ms []migration
	for _, v := range slices.Sorted(maps.Keys(byVersion)) {
		m, err := pickMigration(byVersion[v], d)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// pickMigration checks the files of one migration number (dialect → file,
// "" for the common one) and returns the one d runs.
func pickMigration(files map[string]migration, d *dialect) (migration, error) {
	var names []string
	for _, variant := range slices.Sorted(maps.Keys(files)) {
		names = append(names, files[variant].file)
	}
	if common, ok := files[""]; ok {
		if len(files) > 1 {
			return migration{}, fmt.Errorf("store: migrations %v share a number (hint: one NNNN_name.sql for every dialect, or one NNNN_name.DIALECT.sql per dialect)", names)
		}
		return common, nil
	}
	for _, variant := range dialects {
		m, ok := files[variant]
		if !ok {
			return migration{}, fmt.Errorf("store: migration %v has no file for dialect %s (hint: add it, or make it one NNNN_name.sql when the SQL is the same)", names, variant)
		}
		if first := files[dialects[0]]; m.name != first.name {
			return migration{}, fmt.Errorf("store: migrations %v share a number but not a name", names)
		}
	}
	return files[d.name], nil
}

// migrate applies every migration newer than the database's version, each
// in its own transaction.
func (s *Store) migrate(ctx context.Context) error { return s.migrateUpTo(ctx, math.MaxInt) }

// migrateUpTo is migrate, stopping after migration number last (tests of a
// migration build the schema before it with this). Each step is a write
// transaction that reads the version again under the write lock, so that
// servers starting together on one PostgreSQL database migrate it once.
func (s *Store) migrateUpTo(ctx context.Context, last int) error {
	ms, err := loadMigrations(s.db.d)
	if err != nil {
		return err
	}
	if err := retryBusy(ctx, func() error {
		return s.Update(ctx, func(tx *Tx) error {
			_, err := tx.tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)`)
			return err
		})
	}); err != nil {
		return fmt.Errorf("store: %s: creating schema_migrations: %w", s.Path, err)
	}
	for _, m := range ms {
		if m.version > last {
			break
		}
		if err := retryBusy(ctx, func() error {
			return s.Update(ctx, func(tx *Tx) error { return tx.migrate(ctx, s.Path, m, ms[len(ms)-1].version) })
		}); err != nil {
			return err
		}
	}
	return nil
}

// sqliteBusy is SQLite's primary result code SQLITE_BUSY.
const sqliteBusy = 5

// retryBusy runs f again while it fails with SQLITE_BUSY, for up to 10 s.
// SQLite answers busy at once, without waiting out busy_timeout, to a
// connection that meets another one turning a new database's journal into
// WAL, which happens when servers start together on a new state directory.
func retryBusy(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqliteBusy || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// migrate applies m unless the database has it already; newest is the
// newest version this binary knows.
func (tx *Tx) migrate(ctx context.Context, where string, m migration, newest int) error {
	var current int
	if err := tx.tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("store: reading schema version of %s: %w", where, err)
	}
	if current > newest {
		return fmt.Errorf("store: %s has schema version %d, newer than this binary knows (%d); upgrade tailplane", where, current, newest)
	}
	if m.version <= current {
		return nil
	}
	if _, err := tx.tx.tx.ExecContext(ctx, m.sql); err != nil { // as written: migrations take no arguments
		hint := ""
		if m.file == m.name {
			hint = " (hint: if its SQL is one dialect's only, split it into NNNN_name.sqlite.sql and NNNN_name.postgres.sql)"
		}
		return fmt.Errorf("store: migration %s on %s: %w%s", m.file, where, err, hint)
	}
	if _, err := tx.tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.version, m.name); err != nil {
		return fmt.Errorf("store: migration %s on %s: %w", m.file, where, err)
	}
	return nil
}
