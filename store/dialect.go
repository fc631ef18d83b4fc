package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"
)

// dialect is what differs between the databases a Store runs on. Queries
// are written once, in the SQL both understand, with ? placeholders; the
// dialect rewrites the placeholders and picks each migration's file (see
// loadMigrations). Anything else that differs (types, JSON functions,
// AUTOINCREMENT vs identity) lives in per-dialect migration files, never
// in Go.
type dialect struct {
	name string // "sqlite" or "postgres": the suffix of its migration files
	// numbered rewrites ? placeholders to $1, $2, ... (PostgreSQL).
	numbered bool
	// writeLock, when not empty, is the first statement of every write
	// transaction. It makes write transactions run one after the other,
	// also across processes, as SQLite's BEGIN IMMEDIATE does.
	writeLock string
	// tables lists the database's tables by name (for Dump).
	tables string
	// sortDump: the dialect has no insertion order (rowid), so Dump sorts
	// each table's rows by their text instead.
	sortDump bool

	rebound sync.Map // query → rewritten query
}

var (
	sqliteDialect = &dialect{
		name:   "sqlite",
		tables: `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`,
	}
	postgresDialect = &dialect{
		name:     "postgres",
		numbered: true,
		// One advisory lock for all of tailplane's write transactions
		// (the key is arbitrary but fixed: every tailplane version must use
		// the same one). Taken first, under READ COMMITTED, it means every
		// statement after it sees every write transaction committed
		// before: a read-check-write (an auth key's use count, a free
		// address) cannot interleave with another's.
		writeLock: `SELECT pg_advisory_xact_lock(7369828174019384165)`,
		tables: `SELECT table_name FROM information_schema.tables
			WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`,
		sortDump: true,
	}
)

// rebind returns q with its ? placeholders numbered when the dialect
// needs it (SQLite's ?NNN keeps its number). A ? inside a quoted string or
// identifier, or a comment, is left alone.
func (d *dialect) rebind(q string) string {
	if !d.numbered || !strings.Contains(q, "?") {
		return q
	}
	if r, ok := d.rebound.Load(q); ok {
		return r.(string)
	}
	var b strings.Builder
	n := 0
	var quote byte // the open quote, or 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '-' && i+1 < len(q) && q[i+1] == '-', c == '/' && i+1 < len(q) && q[i+1] == '*':
			closing := "\n"
			if c == '/' {
				closing = "*/"
			}
			end := strings.Index(q[i+2:], closing)
			if end < 0 {
				end = len(q)
			} else {
				end += i + 2 + len(closing)
			}
			b.WriteString(q[i:end])
			i = end - 1
			continue
		case c == '?':
			// SQLite's ?NNN is parameter NNN, and a ? after it is the
			// next one: $NNN and $NNN+1 on PostgreSQL.
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			if num, err := strconv.Atoi(q[i+1 : j]); err == nil {
				n = max(n, num)
				b.WriteByte('$')
				b.WriteString(q[i+1 : j])
				i = j - 1
				continue
			}
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	r := b.String()
	d.rebound.Store(q, r)
	return r
}

// db is the Store's *sql.DB with its dialect, so that queries written
// with ? run on every dialect. It has only the context-taking methods.
type db struct {
	sql *sql.DB
	d   *dialect
}

func (x db) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return x.sql.ExecContext(ctx, x.d.rebind(q), args...)
}

func (x db) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return x.sql.QueryContext(ctx, x.d.rebind(q), args...)
}

func (x db) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return x.sql.QueryRowContext(ctx, x.d.rebind(q), args...)
}

// begin starts a write transaction, taking the dialect's write lock.
func (x db) begin(ctx context.Context) (sqlTx, error) {
	t, err := x.sql.BeginTx(ctx, nil)
	if err != nil {
		return sqlTx{}, err
	}
	if x.d.writeLock != "" {
		if _, err := t.ExecContext(ctx, x.d.writeLock); err != nil {
			t.Rollback()
			return sqlTx{}, err
		}
	}
	return sqlTx{tx: t, d: x.d}, nil
}

func (x db) Close() error { return x.sql.Close() }

// sqlTx is a *sql.Tx with its dialect; see db.
type sqlTx struct {
	tx *sql.Tx
	d  *dialect
}

func (x sqlTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return x.tx.ExecContext(ctx, x.d.rebind(q), args...)
}

func (x sqlTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return x.tx.QueryContext(ctx, x.d.rebind(q), args...)
}

func (x sqlTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return x.tx.QueryRowContext(ctx, x.d.rebind(q), args...)
}

func (x sqlTx) Commit() error   { return x.tx.Commit() }
func (x sqlTx) Rollback() error { return x.tx.Rollback() }
