package testkit

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestStartPostgres: the cluster takes connections with the password only,
// NewDatabase makes empty databases, and Stop removes everything.
func TestStartPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := StartPostgres(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	url := p.NewDatabase(t)
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var db string
	if err := c.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil || !strings.HasSuffix(url, "/"+db+"?sslmode=disable") {
		t.Errorf("connected to %q (%v), want the database of %s", db, err, url)
	}
	c.Close(ctx)
	if c, err := pgx.Connect(ctx, strings.Replace(url, p.Password(), "wrong", 1)); err == nil {
		c.Close(ctx)
		t.Error("a wrong password was let in")
	}
	p.Stop()
	if _, err := os.Stat(p.Dir()); !os.IsNotExist(err) {
		t.Errorf("after Stop, %s: %v; want it gone", p.Dir(), err)
	}
}
