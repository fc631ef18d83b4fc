package store

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// IsPostgresURL reports whether s is a PostgreSQL URL (postgres:// or
// postgresql://), the only form OpenPostgres takes.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// OpenPostgres opens the PostgreSQL database at dsn
// ("postgres://user@host:5432/db?sslmode=verify-full") and brings its
// schema up to date, as Open does for SQLite. What the URL leaves out
// comes from the environment as with libpq: PGHOST, PGPORT, PGUSER,
// PGPASSWORD, PGPASSFILE (~/.pgpass), PGSSLMODE and the other PG*
// variables. The URL may hold a password; it never appears in an error or
// in Store.Path (see RedactURL).
//
// Servers sharing the database migrate it once, one after the other: the
// migrations run under the write lock that Update takes.
func OpenPostgres(ctx context.Context, dsn string) (*Store, error) {
	s, password, err := connectPostgres(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, scrub(err, password)
	}
	return s, nil
}

// OpenPostgresCurrent is OpenPostgres for a database that must already be
// at this binary's schema version: it never migrates, so it changes
// nothing in a database that servers of another version use, and a
// database at another version is an error. `tailplane store copy
// --to-state-dir` reads the replicas' database with it.
func OpenPostgresCurrent(ctx context.Context, dsn string) (*Store, error) {
	s, _, err := connectPostgres(ctx, dsn)
	if err != nil {
		return nil, err
	}
	ms, err := loadMigrations(postgresDialect)
	if err == nil {
		var have int
		if have, err = schemaVersion(ctx, s.db.sql); err == nil && len(ms) > 0 && have != ms[len(ms)-1].version {
			err = fmt.Errorf("store: %s has schema version %d and this tailplane %d (hint: run the copy with the tailplane the replicas run, or start one replica of this version first, which migrates it)", s.Path, have, ms[len(ms)-1].version)
		}
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// connectPostgres connects to the database at dsn, as it is. password is
// the one it connected with (from the URL or the environment).
func connectPostgres(ctx context.Context, dsn string) (s *Store, password string, err error) {
	where := RedactURL(dsn)
	if !IsPostgresURL(dsn) {
		return nil, "", fmt.Errorf("store: %s is not a PostgreSQL URL (hint: postgres://user@host:5432/database)", where)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx masks the password in its parse errors only as far as it can
		// tell where it is in a URL that does not parse: say no more than
		// that it does not.
		return nil, "", fmt.Errorf("store: %s does not parse as a PostgreSQL URL (hint: postgres://user@host:5432/database?sslmode=verify-full, with special characters percent-encoded)", where)
	}
	setSessionDefaults(cfg)
	sqlDB := stdlib.OpenDB(*cfg)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, "", scrub(fmt.Errorf("store: connecting to %s: %w (hint: is the server up, and do the URL or the PG* variables give the right user, password and database?)", where, err), cfg.Password)
	}
	st := &Store{db: db{sql: sqlDB, d: postgresDialect}, Path: where}
	st.replica = replicaConn{id: newReplicaID(), cfg: cfg.Copy()}
	return st, cfg.Password, nil
}

// scrub returns err with every occurrence of password in its text masked;
// it still wraps err. Database drivers have no reason to put the password
// in an error, and this makes sure of it.
func scrub(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return scrubbedError{err, strings.ReplaceAll(err.Error(), password, "xxxxx")}
}

type scrubbedError struct {
	err  error
	text string
}

func (e scrubbedError) Error() string { return e.text }
func (e scrubbedError) Unwrap() error { return e.err }

// RedactURL returns the database URL s fit for logs, errors and status:
// its password, in the user part or as a password parameter, is replaced
// by xxxxx. A string that is not a URL comes back as a placeholder, since
// where its password is cannot be told.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		// "tp:pw@db/tp" parses as scheme tp with an opaque rest that
		// Redacted would print as it is.
		return "(a database URL that does not parse)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
