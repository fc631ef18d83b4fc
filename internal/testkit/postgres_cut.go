package testkit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// CutListeners ends, as the server does to a client when it fails over or
// restarts, every connection to the database at dbURL whose last command
// was a LISTEN, and returns how many it ended; a failure fails t.
func (p *Postgres) CutListeners(t testing.TB, dbURL string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("postgres: connecting to cut listeners: %v", err)
	}
	defer c.Close(ctx)
	var n int
	err = c.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN %'`).Scan(&n)
	if err != nil {
		t.Fatalf("postgres: cutting listeners: %v", fmt.Errorf("%w\n%s", err, p.Log()))
	}
	return n
}
