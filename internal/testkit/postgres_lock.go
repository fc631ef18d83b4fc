package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TableLock is a transaction of its own holding a lock on a table of a
// test's database: a server writing the table waits in the middle of its
// transaction until Release, so a test can kill it there.
type TableLock struct {
	t  testing.TB
	c  *pgx.Conn
	tx pgx.Tx
}

// LockTable locks table of the database at dbURL in EXCLUSIVE mode: reads
// go on, every write of it waits. It is released when the test ends at the
// latest; a failure fails t.
func (p *Postgres) LockTable(t testing.TB, dbURL, table string) *TableLock {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("postgres: connecting to lock %s: %v", table, err)
	}
	tx, err := c.Begin(ctx)
	if err == nil {
		_, err = tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{table}.Sanitize()+" IN EXCLUSIVE MODE")
	}
	if err != nil {
		c.Close(ctx)
		t.Fatalf("postgres: locking %s: %v\n%s", table, err, p.Log())
	}
	l := &TableLock{t: t, c: c, tx: tx}
	t.Cleanup(l.Release)
	return l
}

// Release ends the lock's transaction; releasing again does nothing.
func (l *TableLock) Release() {
	if l.c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l.tx.Rollback(ctx)
	l.c.Close(ctx)
	l.c = nil
}

// WaitingOnLock counts the connections to the database at dbURL that wait
// for a lock in a statement starting with prefix (a server's transaction
// stopped by LockTable, say); a failure fails t.
func (p *Postgres) WaitingOnLock(t testing.TB, dbURL, prefix string) int {
	t.Helper()
	return p.queryCount(t, dbURL, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
		AND wait_event_type = 'Lock' AND starts_with(query, $1)`, prefix)
}
