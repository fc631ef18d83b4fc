package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"tailscale.com/tailcfg"
)

// lockedBuffer is a bytes.Buffer safe for a command writing while a test reads.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServe runs `tailplane serve` in-process until the test ends and
// returns its stderr.
func startServe(t *testing.T, args ...string) *lockedBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr lockedBuffer
	env := &cliEnv{stdout: &stderr, stderr: &stderr, getenv: func(string) string { return "" }}
	done := make(chan int, 1)
	go func() { done <- runCLI(ctx, env, append([]string{"serve"}, args...)) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("serve exited %d after cancel:\n%s", code, stderr.String())
		}
		// Everything serve started ends with it.
		deadline := time.Now().Add(30 * time.Second)
		for left := tailplaneGoroutines(); left != ""; left = tailplaneGoroutines() {
			if time.Now().After(deadline) {
				t.Errorf("goroutines left after serve returned:\n%s", left)
				break
			}
			time.Sleep(10 * time.Millisecond) // polling goroutine stacks; nothing to wait on
		}
	})
	return &stderr
}

// tailplaneGoroutines returns the stacks of goroutines running or started
// by tailplane's code, other than tests' own and their helpers'
// (internal/testkit and internal/localsvc: a test's PostgreSQL server
// outlives serve); "" when
// there are none.
func tailplaneGoroutines() string {
	var b strings.Builder
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	var out []string
	for g := range strings.SplitSeq(b.String(), "\n\n") {
		if strings.Contains(g, "testing.tRunner") || strings.Contains(g, "testing.(*T).Run") || strings.Contains(g, "tailplane/internal/testkit.") || strings.Contains(g, "tailplane/internal/localsvc.") {
			continue
		}
		if strings.Contains(g, "github.com/tailplane/tailplane/") || strings.Contains(g, "main.") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// getKey fetches /key from url until the server answers.
func getKey(t *testing.T, client *http.Client, url string) tailcfg.OverTLSPublicKeyResponse {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := client.Get(url + "/key?v=142")
		if err == nil {
			var k tailcfg.OverTLSPublicKeyResponse
			err = json.NewDecoder(res.Body).Decode(&k)
			res.Body.Close()
			if err == nil {
				return k
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestServeUsageErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"no-config", []string{"serve", "--state-dir", t.TempDir()}, exitUsage, "--config and --state-dir are required"},
		{"cert-without-key", []string{"serve", "--config", ".", "--state-dir", t.TempDir(), "--tls-cert", "x.pem"}, exitUsage, "--tls-cert needs --tls-key"},
		{"bad-flag", []string{"serve", "--nope"}, exitUsage, ""},
		{"missing-config-dir", []string{"serve", "--config", filepath.Join(t.TempDir(), "nope"), "--state-dir", t.TempDir()}, exitProblems, "config"},
		{"bad-derp-map", []string{"serve", "--config", filepath.Join(repoRoot, "examples", "basic"), "--state-dir", t.TempDir(),
			"--listen", "127.0.0.1:0", "--derp-map", filepath.Join(repoRoot, "go.mod")}, exitProblems, "is not a JSON DERP map"},
		{"wildcard-listen-without-server-url", []string{"serve", "--config", filepath.Join(repoRoot, "examples", "basic"), "--state-dir", t.TempDir(),
			"--listen", "0.0.0.0:0"}, exitProblems, "add --server-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runTool(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tt.wantCode, tt.want)
			}
		})
	}
}

func TestServeHTTP(t *testing.T) {
	addr := freeAddr(t)
	state := t.TempDir()
	log := startServe(t, "--config", filepath.Join(repoRoot, "examples", "basic"), "--state-dir", state, "--listen", addr)
	k := getKey(t, http.DefaultClient, "http://"+addr)
	if k.PublicKey.IsZero() {
		t.Fatalf("no Noise key in /key answer")
	}
	if _, err := os.Stat(filepath.Join(state, "noise.key")); err != nil {
		t.Errorf("Noise key not persisted: %v", err)
	}
	if _, err := os.Stat(filepath.Join(state, "derp-cert.pem")); err != nil {
		t.Errorf("DERP certificate not persisted: %v", err)
	}
	if !strings.Contains(log.String(), "embedded DERP relay on 127.0.0.1:") {
		t.Errorf("log does not mention the DERP relay:\n%s", log.String())
	}
}

func TestServeHTTPSWithExternalDERPMap(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	derpMap := filepath.Join(dir, "derpmap.json")
	os.WriteFile(derpMap, []byte(`{"Regions":{"1":{"RegionID":1,"RegionCode":"x","Nodes":[{"Name":"1a","RegionID":1,"HostName":"derp.example.com"}]}}}`), 0o644)
	addr := freeAddr(t)
	log := startServe(t, "--config", filepath.Join(repoRoot, "examples", "basic"), "--state-dir", filepath.Join(dir, "state"),
		"--listen", addr, "--tls-cert", certFile, "--tls-key", keyFile, "--derp-map", derpMap)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if k := getKey(t, client, "https://"+addr); k.PublicKey.IsZero() {
		t.Fatalf("no Noise key over HTTPS")
	}
	if strings.Contains(log.String(), "embedded DERP relay") {
		t.Errorf("embedded relay started despite --derp-map:\n%s", log.String())
	}
}

func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(priv)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return certFile, keyFile
}
