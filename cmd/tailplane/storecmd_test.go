package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

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
	k, err := control.LoadOrCreateNoiseKey(state)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := getKey(t, http.DefaultClient, srv.URL()).PublicKey.String(), k.Public().String(); got != want {
		t.Errorf("the replica on the copy serves Noise key %s; want the single node's %s", got, want)
	}
	st := srv.Pipeline().Status()
	if st.Applied == nil || srv.Tailnet().Settings.Name != "Example" {
		t.Errorf("the replica on the copy serves %+v, tailnet %q; want the single node's applied revision", st.Applied, srv.Tailnet().Settings.Name)
	}
	nodes, err := srv.Control().Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Name != "web" {
		t.Errorf("the replica on the copy has nodes %+v (%v); want web", nodes, err)
	}
}
