package testkit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/localsvc"
)

// PostgresInstallHint is what a test without PostgreSQL says to do.
const PostgresInstallHint = localsvc.PostgresInstallHint

// Postgres is a throwaway PostgreSQL cluster (localsvc.Postgres: a fresh
// data directory, a server on a free port of 127.0.0.1, a superuser
// postgres with a random password) that hands tests new databases.
type Postgres struct {
	*localsvc.Postgres
	dbs atomic.Int64 // databases made by NewDatabase
}

// StartPostgres starts a cluster (localsvc.StartPostgres: as the user
// postgres when the tests run as root; the error says how to install
// PostgreSQL when it is missing). Stop stops it and removes its directory.
func StartPostgres(ctx context.Context) (*Postgres, error) {
	p, err := localsvc.StartPostgres(ctx)
	if err != nil {
		return nil, fmt.Errorf("these tests need PostgreSQL: %w", err)
	}
	return &Postgres{Postgres: p}, nil
}

// NewDatabase creates an empty database and returns its URL (with the
// password); a failure fails t.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, err := p.CreateDatabase(ctx, fmt.Sprintf("test%d", p.dbs.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// NewPostgres starts a cluster of its own for one test (StartPostgres)
// and stops it when the test ends; a failure fails t.
func NewPostgres(t testing.TB) *Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := StartPostgres(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

var shared struct {
	mu  sync.Mutex // guards the fields below
	pg  *Postgres
	err error
}

// SharedPostgres is a cluster that all the tests of one test binary share,
// started on first use (a failure fails t, with the install hint when
// PostgreSQL is missing). The package's TestMain calls StopSharedPostgres
// after m.Run; should it not, the server still dies with the process.
func SharedPostgres(t testing.TB) *Postgres {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.pg == nil && shared.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.pg, shared.err = StartPostgres(ctx)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.pg
}

// StopSharedPostgres stops the cluster SharedPostgres started, if any.
func StopSharedPostgres() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.pg != nil {
		shared.pg.Stop()
		shared.pg = nil
	}
}
