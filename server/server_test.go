package server

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/tailplane/tailplane/internal/testkit"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/gitsync"
	"github.com/tailplane/tailplane/pipeline"
	"tailscale.com/tailcfg"
)

const (
	keyA = "tpk-server-test-a-0123456789"
	keyB = "tpk-server-test-b-0123456789"
)

// configDir writes examples/basic plus a read API key whose secret is key
// into dir.
func configDir(t *testing.T, dir, key string) {
	t.Helper()
	testkit.CopyFiles(t, "../examples/basic", dir)
	api := `{"apiKeys": {"ops": {"role": "read", "secretHash": "` + testkit.SecretHash(key) + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "api.hujson"), []byte(api), 0o644); err != nil {
		t.Fatal(err)
	}
}

// get fetches url with an API key and returns the status code and body.
func get(t *testing.T, url, key string) (int, string) {
	t.Helper()
	a := testkit.Request(t, "GET", url, key, nil, nil)
	return a.Status, string(a.Body)
}

// TestNewServesDirectory builds the whole server from a directory: New
// returns once the first revision is served, the control protocol and
// the admin API answer on one listener, the admin API's keys are those
// of the served tailnet (a new revision swaps them), and Close stops
// everything, the listener first.
func TestNewServesDirectory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	configDir(t, dir, keyA)
	srv, err := New(ctx, Config{StateDir: t.TempDir(), ConfigDir: dir, FirstApplyWait: 30 * time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if st := srv.Pipeline().Status(); !st.Serving || srv.Tailnet().Settings.Name != "Example" {
		t.Fatalf("after New: serving %v, tailnet %q; want examples/basic served", st.Serving, srv.Tailnet().Settings.Name)
	}
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") || srv.DERP() == nil {
		t.Errorf("URL %q, relay %v; want a loopback URL and the embedded relay", srv.URL(), srv.DERP())
	}
	code, body := get(t, srv.URL()+"/key?v=142", "")
	var k tailcfg.OverTLSPublicKeyResponse
	if err := json.Unmarshal([]byte(body), &k); code != http.StatusOK || err != nil || k.PublicKey.IsZero() {
		t.Errorf("GET /key = %d %s", code, body)
	}
	if code, body := get(t, srv.URL()+"/api/v1/status", keyA); code != http.StatusOK {
		t.Errorf("status with the served key: %d %s", code, body)
	}

	configDir(t, dir, keyB)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	first := srv.Pipeline().Status().Applied.Commit
	if _, err := srv.Pipeline().Wait(wctx, func(st pipeline.Status) bool {
		return st.Applied != nil && st.Applied.Commit != first
	}); err != nil {
		t.Fatalf("the edited directory was not applied: %v", err)
	}
	if code, _ := get(t, srv.URL()+"/api/v1/status", keyA); code != http.StatusUnauthorized {
		t.Errorf("status with the key the new revision removed: %d, want 401", code)
	}
	if code, body := get(t, srv.URL()+"/api/v1/status", keyB); code != http.StatusOK {
		t.Errorf("status with the key the new revision declares: %d %s", code, body)
	}

	addr := srv.Addr().String()
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Close", addr)
	}
	select {
	case err := <-srv.Err():
		t.Errorf("Err after Close received %v, want nothing", err)
	default:
	}
}

// TestNewStartErrors: New names what keeps the server from starting, and
// a refused first directory comes with its problems.
func TestNewStartErrors(t *testing.T) {
	ctx := context.Background()
	basic := t.TempDir()
	configDir(t, basic, keyA)
	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, "tailnet.hujson"), []byte(`{"users": {"bob@example.com": {"role": "superhero"}}}`), 0o644)

	if _, err := New(ctx, Config{}); err == nil || !strings.Contains(err.Error(), "StateDir") {
		t.Errorf("New(Config{}) = %v, want a missing StateDir and source", err)
	}
	_, err := New(ctx, Config{StateDir: t.TempDir(), ConfigDir: basic, Listen: "0.0.0.0:0", Logf: t.Logf})
	var ue *ServerURLError
	if !errors.As(err, &ue) || ue.URL != "" || ue.Port == 0 {
		t.Errorf("wildcard Listen without ServerURL: %v, want a *ServerURLError with the port", err)
	}
	_, err = New(ctx, Config{StateDir: t.TempDir(), ConfigDir: basic, ServerURL: "no-host", Logf: t.Logf})
	if !errors.As(err, &ue) || ue.URL != "no-host" {
		t.Errorf("ServerURL without a host: %v, want a *ServerURLError naming it", err)
	}
	_, err = New(ctx, Config{StateDir: t.TempDir(), ConfigDir: broken, FirstApplyWait: 30 * time.Second, Logf: t.Logf})
	var fe *FirstApplyError
	if !errors.As(err, &fe) || fe.Attempt.Step != pipeline.StepValidate || !strings.Contains(fe.Problems(), "tailnet.hujson:1:") {
		t.Errorf("broken first directory: %v, want a *FirstApplyError at validate, positioned", err)
	}
}

// TestRestartServesAppliedState: a server started on the state of an
// earlier one serves its applied tailnet before its source answers (here
// a remote nobody listens on).
func TestRestartServesAppliedState(t *testing.T) {
	ctx := context.Background()
	dir, state := t.TempDir(), t.TempDir()
	configDir(t, dir, keyA)
	first, err := New(ctx, Config{StateDir: state, ConfigDir: dir, FirstApplyWait: 30 * time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	applied := first.Pipeline().Status().Applied
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	again, err := New(ctx, Config{StateDir: state, Logf: t.Logf, Repo: gitsync.Config{URL: "http://" + dead + "/tailnet.git", Poll: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	st := again.Pipeline().Status()
	if !st.Serving || st.Applied == nil || st.Applied.Commit != applied.Commit || again.Tailnet().Settings.Name != "Example" {
		t.Errorf("restarted: serving %v, applied %+v, tailnet %q; want %s served at once", st.Serving, st.Applied, again.Tailnet().Settings.Name, applied.Commit)
	}
}
