package localsvc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPostgresBin: initdb is found on PATH or in the newest version's
// directory; without either the error says how to install PostgreSQL.
func TestPostgresBin(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	lib := t.TempDir()
	if _, err := postgresBinIn(lib); err == nil || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Errorf("no PostgreSQL: error %v, want the install hint", err)
	}
	for _, v := range []string{"9", "15", "13"} {
		bin := filepath.Join(lib, v, "bin")
		os.MkdirAll(bin, 0o755)
		os.WriteFile(filepath.Join(bin, "initdb"), nil, 0o755)
	}
	if got, err := postgresBinIn(lib); err != nil || got != filepath.Join(lib, "15", "bin") {
		t.Errorf("postgresBinIn = %q, %v; want version 15's", got, err)
	}
}

// TestStartPostgres: a cluster takes connections to a database made by
// CreateDatabase with its password only, and Stop removes its directory.
func TestStartPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := StartPostgres(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	url, err := p.CreateDatabase(ctx, "load-test")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var db string
	if err := c.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil || db != "load-test" {
		t.Errorf("connected to %q (%v), want load-test", db, err)
	}
	c.Close(ctx)
	if c, err := pgx.Connect(ctx, strings.Replace(url, p.Password(), "wrong", 1)); err == nil {
		c.Close(ctx)
		t.Error("a wrong password was let in")
	}
	if _, err := p.CreateDatabase(ctx, "load-test"); err == nil {
		t.Error("creating load-test twice: no error")
	}
	p.Stop()
	if _, err := os.Stat(p.Dir()); !os.IsNotExist(err) {
		t.Errorf("after Stop, %s: %v; want it gone", p.Dir(), err)
	}
}
