package testkit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// listenersQuery selects the connections to the current database, other
// than its own, whose last command was a LISTEN.
const listenersQuery = `FROM pg_stat_activity
	WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN %'`

// Listeners returns how many connections to the database at dbURL have a
// LISTEN as their last command; a failure fails t.
func (p *Postgres) Listeners(t testing.TB, dbURL string) int {
	t.Helper()
	return p.queryCount(t, dbURL, `SELECT count(*) `+listenersQuery)
}

// CutListeners ends, as the server does to a client when it fails over or
// restarts, every connection to the database at dbURL whose last command
// was a LISTEN, and returns how many it ended; a failure fails t.
func (p *Postgres) CutListeners(t testing.TB, dbURL string) int {
	t.Helper()
	return p.queryCount(t, dbURL, `SELECT count(pg_terminate_backend(pid)) `+listenersQuery)
}

// queryCount runs q with args, which selects one count, on the database
// at dbURL.
func (p *Postgres) queryCount(t testing.TB, dbURL, q string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("postgres: connecting to run %s: %v", q, err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		t.Fatalf("postgres: %s: %v", q, fmt.Errorf("%w\n%s", err, p.Log()))
	}
	return n
}
