package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/internal/testkit"
)

// TestMigrationFiles: a migration number has one file for every dialect or
// one per dialect; databases record it under its dialect-free name.
func TestMigrationFiles(t *testing.T) {
	tests := []struct {
		name    string
		files   []string
		want    map[string][]string // dialect → "version name file"
		wantErr string
	}{
		{
			name:  "common and split",
			files: []string{"0001_a.sql", "0002_b.sqlite.sql", "0002_b.postgres.sql"},
			want: map[string][]string{
				"sqlite":   {"1 0001_a.sql 0001_a.sql", "2 0002_b.sql 0002_b.sqlite.sql"},
				"postgres": {"1 0001_a.sql 0001_a.sql", "2 0002_b.sql 0002_b.postgres.sql"},
			},
		},
		{name: "one dialect missing", files: []string{"0001_a.sqlite.sql"}, wantErr: "no file for dialect postgres"},
		{name: "common beside split", files: []string{"0001_a.sql", "0001_a.postgres.sql"}, wantErr: "share a number"},
		{name: "two common", files: []string{"0001_a.sql", "0001_b.sql"}, wantErr: "share a number"},
		{name: "split names differ", files: []string{"0001_a.sqlite.sql", "0001_b.postgres.sql"}, wantErr: "share a number but not a name"},
		{name: "unknown dialect", files: []string{"0001_a.mysql.sql"}, wantErr: `dialect "mysql"`},
		{name: "not numbered", files: []string{"a.sql"}, wantErr: "not named NNNN_name.sql"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tt.files {
				fsys["migrations/"+f] = &fstest.MapFile{Data: []byte("-- " + f)}
			}
			got := map[string][]string{}
			for _, d := range []*dialect{sqliteDialect, postgresDialect} {
				ms, err := migrationsIn(fsys, d)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("%s: error %v, want one saying %q", d.name, err, tt.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range ms {
					if m.sql != "-- "+m.file {
						t.Errorf("%s: migration %s holds %q", d.name, m.file, m.sql)
					}
					got[d.name] = append(got[d.name], fmt.Sprintf("%d %s %s", m.version, m.name, m.file))
				}
			}
			if tt.wantErr == "" {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("migrations (-want +got):\n%s", diff)
				}
			}
		})
	}
	// The embedded migrations follow the rules and number 1, 2, 3, ...
	for _, d := range []*dialect{sqliteDialect, postgresDialect} {
		ms, err := loadMigrations(d)
		if err != nil {
			t.Fatalf("embedded migrations for %s: %v", d.name, err)
		}
		for i, m := range ms {
			if m.version != i+1 {
				t.Errorf("%s: migration %s is number %d, want %d (no gaps)", d.name, m.file, m.version, i+1)
			}
		}
	}
}

func TestRebind(t *testing.T) {
	tests := []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`INSERT INTO t (a, b) VALUES (?, ?)`, `INSERT INTO t (a, b) VALUES ($1, $2)`},
		{`SELECT '?', "a?b", x FROM t WHERE y = ? -- why?` + "\n" + `AND z = ?`, `SELECT '?', "a?b", x FROM t WHERE y = $1 -- why?` + "\n" + `AND z = $2`},
		{`SELECT 'it''s ?' WHERE a = ?`, `SELECT 'it''s ?' WHERE a = $1`},
		{`SELECT ? -- trailing comment ?`, `SELECT $1 -- trailing comment ?`},
		{`SELECT ?2, ?1, ?`, `SELECT $2, $1, $3`},
		{`SELECT /* a ? */ ? /* ? */`, `SELECT /* a ? */ $1 /* ? */`},
		{`SELECT ? /* unclosed ?`, `SELECT $1 /* unclosed ?`},
		{`SELECT ? --`, `SELECT $1 --`},
		{`SELECT ?0`, `SELECT $0`},
	}
	for _, tt := range tests {
		if got := postgresDialect.rebind(tt.in); got != tt.want {
			t.Errorf("postgres rebind(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := sqliteDialect.rebind(tt.in); got != tt.in {
			t.Errorf("sqlite rebind(%q) = %q, want it unchanged", tt.in, got)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://tailplane@db.example:5432/tailplane", "postgres://tailplane@db.example:5432/tailplane"},
		{"postgres://tailplane:s3cret@db.example/tailplane?sslmode=verify-full", "postgres://tailplane:xxxxx@db.example/tailplane?sslmode=verify-full"},
		{"postgresql://db.example/tailplane?password=s3cret&user=tp", "postgresql://db.example/tailplane?password=xxxxx&user=tp"},
		{"postgres://tailplane:s3cret@db example/%zz", "(a database URL that does not parse)"},
		{"host=db password=s3cret", "(a database URL that does not parse)"},
		{"tp:s3cret@db/tp", "(a database URL that does not parse)"},
		{"postgres:tp:s3cret@db/tp", "(a database URL that does not parse)"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestOpenPostgresErrors: what keeps OpenPostgres from opening is said
// with a hint, and never with the password.
func TestOpenPostgresErrors(t *testing.T) {
	pg := testkit.SharedPostgres(t)
	good := pg.NewDatabase(t)
	wrong := strings.Replace(good, pg.Password(), "wrong-"+pg.Password(), 1)
	tests := []struct {
		name, url, password, want string
	}{
		{"wrong password", wrong, "wrong-" + pg.Password(), "connecting to postgres://postgres:xxxxx@127.0.0.1"},
		{"no such database", strings.Replace(good, "/test", "/missing", 1), pg.Password(), "hint: is the server up"},
		{"not a URL", "host=127.0.0.1 password=" + pg.Password(), pg.Password(), "not a PostgreSQL URL"},
		{"does not parse", "postgres://postgres:" + pg.Password() + "@127.0.0.1:notaport/x", pg.Password(), "does not parse as a PostgreSQL URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, err := OpenPostgres(ctx, tt.url)
			if err == nil {
				s.Close()
				t.Fatal("OpenPostgres succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), tt.password) {
				t.Errorf("error %q: want it to say %q and not the password", err, tt.want)
			}
		})
	}
}

// TestOpenPostgresEnvironment: what the URL leaves out comes from the PG*
// variables, as with libpq: the password from PGPASSWORD or a password
// file, and a wrong one is not shown either.
func TestOpenPostgresEnvironment(t *testing.T) {
	pg := testkit.SharedPostgres(t)
	u, err := url.Parse(pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User("postgres")
	noPassword := u.String()
	passfile := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(passfile, []byte(u.Hostname()+":"+u.Port()+":*:postgres:"+pg.Password()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"PGPASSWORD", map[string]string{"PGPASSWORD": pg.Password()}, ""},
		{"PGPASSFILE", map[string]string{"PGPASSFILE": passfile}, ""},
		{"wrong PGPASSWORD", map[string]string{"PGPASSWORD": "wrong-password-1234"}, "password authentication failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "none"))
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			s, err := OpenPostgres(context.Background(), noPassword)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("OpenPostgres succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), tt.env["PGPASSWORD"]) {
				t.Errorf("error %q: want it to say %q and not the password", err, tt.wantErr)
			}
		})
	}
}

// TestOneShotKeyConcurrently: two servers (store handles) registering
// with the same one-shot key at the same moment register exactly one
// node, round after round. Half the rounds hold each registration's
// transaction open a moment after counting the use, as a slow one would,
// so that without the write lock both would count from zero.
func TestOneShotKeyConcurrently(t *testing.T) { eachDB(t, testOneShotKeyConcurrently) }

func testOneShotKeyConcurrently(t *testing.T, db testDB) {
	ctx := context.Background()
	stores := []*Store{db.open(t), db.open(t)}
	register := func(s *Store, n *Node, hash string, slow bool) error {
		if !slow {
			return s.RegisterNode(ctx, n, hash, 1)
		}
		return s.Update(ctx, func(tx *Tx) error {
			if err := tx.CountAuthKeyUse(ctx, hash, 1); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
			return tx.SaveNode(ctx, n)
		})
	}
	for round := range 20 {
		hash := fmt.Sprintf("sha256:%064x", round)
		errs := race(stores, func(i int, s *Store) error {
			name := fmt.Sprintf("r%d-s%d", round, i)
			return register(s, &Node{StableID: name, MachineKey: "m", NodeKey: name, GivenName: name, CreatedAt: time.Now()}, hash, round%2 == 1)
		})
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrAuthKeyUsedUp):
				t.Errorf("round %d, store %d: %v", round, i, err)
			}
		}
		if uses, err := stores[0].AuthKeyUses(ctx, hash); won != 1 || uses != 1 || err != nil {
			t.Fatalf("round %d: %d registrations succeeded, uses %d (%v); want exactly 1", round, won, uses, err)
		}
	}
	if nodes, err := stores[1].Nodes(ctx); err != nil || len(nodes) != 20 {
		t.Errorf("stored %d nodes (%v), want one per round (20)", len(nodes), err)
	}
}

// race runs f for every store at once and returns what each returned.
func race(stores []*Store, f func(i int, s *Store) error) []error {
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, s := range stores {
		wg.Go(func() {
			<-start
			errs[i] = f(i, s)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// TestAddressUniqueConcurrently: two servers saving a node with the same
// address at the same moment store exactly one; the other's SaveNode
// fails and stores nothing.
func TestAddressUniqueConcurrently(t *testing.T) { eachDB(t, testAddressUniqueConcurrently) }

func testAddressUniqueConcurrently(t *testing.T, db testDB) {
	ctx := context.Background()
	stores := []*Store{db.open(t), db.open(t)}
	for round := range 10 {
		v4, v6 := fmt.Sprintf("100.64.0.%d", round+1), fmt.Sprintf("fd7a:115c:a1e0::%d", round+1)
		errs := race(stores, func(i int, s *Store) error {
			name := fmt.Sprintf("r%d-s%d", round, i)
			return s.SaveNode(ctx, &Node{StableID: name, MachineKey: "m", NodeKey: name, GivenName: name, IPv4: v4, IPv6: v6, CreatedAt: time.Now()})
		})
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("round %d: SaveNode errors %v; want exactly one to fail", round, errs)
		}
	}
	nodes, err := stores[0].Nodes(ctx)
	if err != nil || len(nodes) != 10 {
		t.Fatalf("stored %d nodes (%v), want one per round (10)", len(nodes), err)
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		if seen[n.IPv4] || seen[n.IPv6] {
			t.Errorf("address of %s stored twice: %s %s", n.GivenName, n.IPv4, n.IPv6)
		}
		seen[n.IPv4], seen[n.IPv6] = true, true
	}
}

// TestOpenNewerSchema: a database migrated by a newer tailplane is
// refused, and left as it is.
func TestOpenNewerSchema(t *testing.T) { eachDB(t, testOpenNewerSchema) }

func testOpenNewerSchema(t *testing.T, db testDB) {
	ctx := context.Background()
	s := db.open(t)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := db.connect(ctx); err == nil || !strings.Contains(err.Error(), "upgrade tailplane") {
		if err == nil {
			s.Close()
		}
		t.Fatalf("opening a database of schema version 9999: %v, want a hint to upgrade", err)
	}
	s = db.openRaw(t)
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = 9999`).Scan(&n); err != nil || n != 1 {
		t.Errorf("after the refusal: %d rows of version 9999 (%v), want it kept", n, err)
	}
}

// TestOpenConcurrently: servers starting together on one new database
// migrate it once between them, and both open.
func TestOpenConcurrently(t *testing.T) { eachDB(t, testOpenConcurrently) }

func testOpenConcurrently(t *testing.T, db testDB) {
	ctx := context.Background()
	var wg sync.WaitGroup
	stores := make([]*Store, 3)
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = db.connect(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	rows, err := stores[0].db.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	ms, _ := loadMigrations(stores[0].db.d)
	var want []int
	for _, m := range ms {
		want = append(want, m.version)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
}
