package testkit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestNewDatabase: each NewDatabase of one cluster is a database of its
// own that takes connections (the cluster itself is tested in package
// localsvc).
func TestNewDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := NewPostgres(t)
	seen := map[string]bool{}
	for range 2 {
		url := p.NewDatabase(t)
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		var db string
		err = c.QueryRow(ctx, "SELECT current_database()").Scan(&db)
		c.Close(ctx)
		if err != nil || seen[db] || !strings.Contains(url, "/"+db+"?") {
			t.Errorf("connected to %q (%v) for %s; want a new database of that name", db, err, url)
		}
		seen[db] = true
	}
}
