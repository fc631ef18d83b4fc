package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/internal/testkit"
	"tailscale.com/tailcfg"
)

// noiseKeyOf is the Noise public key srv hands clients (GET /key).
func noiseKeyOf(t *testing.T, srv *Server) string {
	t.Helper()
	code, body := get(t, srv.URL()+"/key?v=130", "")
	var resp tailcfg.OverTLSPublicKeyResponse
	if err := json.Unmarshal([]byte(body), &resp); code != 200 || err != nil {
		t.Fatalf("GET /key: %d %s (%v)", code, body, err)
	}
	return resp.PublicKey.String()
}

// relayPin is the certificate pin of srv's embedded relay.
func relayPin(srv *Server) string {
	for _, r := range srv.DERP().Map.Regions {
		return r.Nodes[0].CertName
	}
	return ""
}

// TestReplicasShareIdentity: two servers on one PostgreSQL database, each
// with its state directory, are one server to clients: the same Noise key
// and the same relay pin. The first brought its state directory's Noise
// key along (a server that ran on PostgreSQL before keeps its identity);
// the second writes no key file; a third with a different noise.key of
// its own still serves the database's, and says so.
func TestReplicasShareIdentity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg := testkit.SharedPostgres(t)
	dbURL := pg.NewDatabase(t)
	dir := t.TempDir()
	configDir(t, dir, keyA)
	stateA, stateB, stateC := t.TempDir(), t.TempDir(), t.TempDir()
	old, err := control.LoadOrCreateNoiseKey(stateA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := control.LoadOrCreateNoiseKey(stateC); err != nil {
		t.Fatal(err)
	}
	var logs testkit.LogBuffer
	start := func(state string) *Server {
		srv, err := New(ctx, Config{StateDir: state, Database: dbURL, ConfigDir: dir, FirstApplyWait: 30 * time.Second, Logf: logs.Logf})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		return srv
	}
	a, b, c := start(stateA), start(stateB), start(stateC)
	want := old.Public().String()
	for name, srv := range map[string]*Server{"a": a, "b": b, "c": c} {
		if got := noiseKeyOf(t, srv); got != want {
			t.Errorf("replica %s serves Noise key %s; want %s (replica a's file)", name, got, want)
		}
		if pin := relayPin(srv); pin != relayPin(a) || !strings.HasPrefix(pin, "sha256-raw:") {
			t.Errorf("replica %s pins its relay as %q; want a's %q", name, pin, relayPin(a))
		}
	}
	if _, err := os.Stat(filepath.Join(stateB, "noise.key")); err == nil {
		t.Errorf("replica b wrote a noise.key of its own")
	}
	if !strings.Contains(logs.String(), "differs from the database's Noise key") {
		t.Errorf("replica c did not say its noise.key is not the one served:\n%s", logs.String())
	}
}
