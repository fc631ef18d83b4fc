package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/server"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/types/key"
)

// singleNodeState runs a single node on SQLite (examples/basic, applied)
// in a new state directory, adds a registered node to its database, stops
// it, and returns the directory.
func singleNodeState(t *testing.T, ctx context.Context) string {
	t.Helper()
	state, dir := t.TempDir(), t.TempDir()
	configRepo(t, dir)
	srv, err := server.New(ctx, server.Config{StateDir: state, ConfigDir: dir, FirstApplyWait: 30 * time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	n := &store.Node{StableID: "sweb", MachineKey: key.NewMachine().Public().String(), NodeKey: key.NewNode().Public().String(), GivenName: "web", UserLogin: "alice@example.com",
		IPv4: "100.64.0.7", CreatedAt: time.Now()}
	if err := srv.Store().SaveNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	return state
}

// TestStoreCopy: `tailplane store copy` copies a single node's SQLite
// database and identity into PostgreSQL; a replica started there, on a new
// state directory, serves the same applied revision, the same node and the
// same Noise key. A second copy into the now full database is refused
// (exit 1) unless --overwrite; bad invocations exit 2. No output holds
// the database password.
func TestStoreCopy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg := testkit.NewPostgres(t)
	dbURL, urlFile := databaseURLFile(t, pg)
	state := singleNodeState(t, ctx)
	empty := t.TempDir()
	// Output with the temporary paths and the database's port replaced.
	normalize := func(s string) string {
		s = strings.ReplaceAll(s, state, "STATE")
		s = strings.ReplaceAll(s, empty, "EMPTY")
		return regexp.MustCompile(`postgres://([^@]*)@[^/ ]*/[a-z0-9_]+`).ReplaceAllString(s, "postgres://$1@HOST/DB")
	}
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
	}{
		{"no-subcommand", []string{"store"}, nil, exitUsage},
		{"no-state-dir", []string{"store", "copy", "--database-url-file", urlFile}, nil, exitUsage},
		{"no-database", []string{"store", "copy", "--from-state-dir", state}, nil, exitUsage},
		{"password-in-flag", []string{"store", "copy", "--from-state-dir", state, "--database", "postgres://tp:hunter2@db.example.com/tp"}, nil, exitUsage},
		{"no-database-file", []string{"store", "copy", "--from-state-dir", empty, "--database-url-file", urlFile}, nil, exitProblems},
		{"copy", []string{"store", "copy", "--from-state-dir", state}, map[string]string{envDatabaseURL: dbURL}, exitOK},
		{"not-empty", []string{"store", "copy", "--from-state-dir", state, "--database-url-file", urlFile}, nil, exitProblems},
		{"overwrite", []string{"store", "copy", "--from-state-dir", state, "--database-url-file", urlFile, "--overwrite"}, nil, exitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runToolEnv(t, tc.env, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit code %d; want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, out, errs)
			}
			for _, secret := range []string{pg.Password(), "hunter2"} {
				if strings.Contains(out+errs, secret) {
					t.Errorf("the output holds a database password:\n%s%s", out, errs)
				}
			}
			if usage := strings.Index(errs, "\nUsage:"); usage >= 0 {
				errs = errs[:usage+1] // the flags' help text is the flag set's
			}
			golden(t, "store-copy-"+tc.name+".golden", normalize("stdout:\n"+out+"stderr:\n"+errs))
		})
	}

	dir := t.TempDir()
	configRepo(t, dir)
	srv, err := server.New(ctx, server.Config{StateDir: t.TempDir(), Database: dbURL, ConfigDir: dir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	checkServesCopy(t, ctx, srv, state, "the replica on the copy")
}

// checkServesCopy checks that srv, started on a copy of the single node
// in state (singleNodeState), serves its Noise key, applied revision and
// node.
func checkServesCopy(t *testing.T, ctx context.Context, srv *server.Server, state, who string) {
	t.Helper()
	k, err := control.LoadOrCreateNoiseKey(state)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := getKey(t, http.DefaultClient, srv.URL()).PublicKey.String(), k.Public().String(); got != want {
		t.Errorf("%s serves Noise key %s; want the single node's %s", who, got, want)
	}
	if st := srv.Pipeline().Status(); st.Applied == nil || srv.Tailnet().Settings.Name != "Example" {
		t.Errorf("%s serves %+v, tailnet %q; want the single node's applied revision", who, st.Applied, srv.Tailnet().Settings.Name)
	}
	nodes, err := srv.Control().Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Name != "web" {
		t.Errorf("%s has nodes %+v (%v); want web", who, nodes, err)
	}
}

// TestStoreCopyBack: `tailplane store copy --to-state-dir` copies the
// replicas' PostgreSQL database and identity back into a single node's
// state directory, which then serves the same applied revision, node and
// Noise key on SQLite. It refuses, copying and writing nothing, while a
// replica holds a live lease, into a directory holding another identity,
// and into a non-empty database without --overwrite.
func TestStoreCopyBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg := testkit.NewPostgres(t)
	dbURL, urlFile := databaseURLFile(t, pg)
	state := singleNodeState(t, ctx)
	if code, out, errs := runToolEnv(t, nil, "store", "copy", "--from-state-dir", state, "--database-url-file", urlFile); code != exitOK {
		t.Fatalf("copy into PostgreSQL: exit %d\n%s%s", code, out, errs)
	}
	back := filepath.Join(t.TempDir(), "back")
	copyBack := func(dir string, extra ...string) (int, string) {
		t.Helper()
		code, out, errs := runToolEnv(t, nil, append([]string{"store", "copy", "--to-state-dir", dir, "--database-url-file", urlFile}, extra...)...)
		if strings.Contains(out+errs, pg.Password()) {
			t.Errorf("the output holds the database password:\n%s%s", out, errs)
		}
		return code, out + errs
	}
	// refused checks that a copy back into dir fails saying want and
	// leaves no database there.
	refused := func(t *testing.T, dir, want string) {
		t.Helper()
		if code, out := copyBack(dir); code != exitProblems || !strings.Contains(out, want) {
			t.Errorf("copy back: exit %d, want %d saying %q\n%s", code, exitProblems, want, out)
		}
		if _, err := os.Stat(filepath.Join(dir, store.FileName)); err == nil {
			t.Errorf("a refused copy left %s in %s", store.FileName, dir)
		}
	}

	t.Run("live-replica", func(t *testing.T) {
		dir := t.TempDir()
		configRepo(t, dir)
		srv, err := server.New(ctx, server.Config{StateDir: t.TempDir(), Database: dbURL, ConfigDir: dir, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		refused(t, back, "live lease")
	})
	t.Run("other-schema-version", func(t *testing.T) {
		exec := func(q string) {
			t.Helper()
			c, err := pgx.Connect(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			if _, err := c.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		exec(`INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')`)
		defer exec(`DELETE FROM schema_migrations WHERE version = 9999`)
		refused(t, back, "schema version 9999")
	})
	t.Run("other-identity", func(t *testing.T) {
		other := t.TempDir()
		if _, err := control.LoadOrCreateNoiseKey(other); err != nil { // another server's key
			t.Fatal(err)
		}
		refused(t, other, "holds another identity")
	})
	t.Run("same-identity-other-layout", func(t *testing.T) {
		dir := t.TempDir()
		cert, err := os.ReadFile(filepath.Join(state, "derp-cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		crlf := strings.ReplaceAll(string(cert), "\n", "\r\n") // the same certificate, laid out otherwise
		if err := os.WriteFile(filepath.Join(dir, "derp-cert.pem"), []byte(crlf), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, out := copyBack(dir); code != exitOK {
			t.Fatalf("copy back over the same certificate: exit %d\n%s", code, out)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "derp-cert.pem")); string(got) != crlf {
			t.Error("the directory's own copy of the certificate was replaced")
		}
		if fi, err := os.Stat(filepath.Join(dir, "derp-cert.pem")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("the kept certificate's mode: %v (%v), want 0600", fi.Mode().Perm(), err)
		}
	})
	t.Run("copy", func(t *testing.T) {
		code, out := copyBack(back)
		if code != exitOK || !strings.Contains(out, "identity: noise.key, derp-cert.pem, derp-key.pem written") {
			t.Fatalf("copy back: exit %d\n%s", code, out)
		}
		for _, f := range []string{"noise.key", "derp-cert.pem", "derp-key.pem"} {
			want, _ := os.ReadFile(filepath.Join(state, f))
			got, err := os.ReadFile(filepath.Join(back, f))
			if err != nil || strings.TrimSpace(string(got)) != strings.TrimSpace(string(want)) {
				t.Errorf("%s after the round trip differs from the single node's (%v)", f, err)
			}
			if fi, err := os.Stat(filepath.Join(back, f)); err == nil && fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
			}
		}
	})
	t.Run("not-empty", func(t *testing.T) {
		if code, out := copyBack(back); code != exitProblems || !strings.Contains(out, "nothing was copied") {
			t.Errorf("a second copy back: exit %d\n%s", code, out)
		}
		if code, out := copyBack(back, "--overwrite"); code != exitOK {
			t.Errorf("a second copy back with --overwrite: exit %d\n%s", code, out)
		}
	})

	dir := t.TempDir()
	configRepo(t, dir)
	srv, err := server.New(ctx, server.Config{StateDir: back, ConfigDir: dir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	checkServesCopy(t, ctx, srv, state, "the single node on the copy")
}
