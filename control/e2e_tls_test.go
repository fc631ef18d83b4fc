package control

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/tailscaled"
)

// testCert is a throwaway CA and a server certificate it signed for
// 127.0.0.1, written to files as `serve --tls-cert/--tls-key` and
// SSL_CERT_FILE want them.
type testCert struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
}

func newTestCert(t *testing.T, dir string) *testCert {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tailplane test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCert{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "cert.pem"),
		keyFile:  filepath.Join(dir, "key.pem"),
		pool:     x509.NewCertPool(),
	}
	tc.pool.AddCert(ca)
	for file, block := range map[string]*pem.Block{
		tc.caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		tc.certFile: {Type: "CERTIFICATE", Bytes: der},
		tc.keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return tc
}

// client returns an HTTP client that trusts the test CA.
func (tc *testCert) client() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tc.pool}}}
}

// TestEndToEndTailscaledHTTPS runs `tailplane serve --tls-cert --tls-key`
// and joins two real tailscaled nodes over https://: the Noise upgrade
// and the embedded relay then both run over TLS with a certificate the
// clients verify (through SSL_CERT_FILE, as a private CA would be).
func TestEndToEndTailscaledHTTPS(t *testing.T) {
	bctx, bcancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer bcancel()
	bins, err := tailscaled.Build(bctx)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := t.TempDir()
	bin := buildTailplane(t, ctx, root)
	tc := newTestCert(t, root)
	configDir := filepath.Join(root, "config")
	os.MkdirAll(configDir, 0o755)
	if err := os.WriteFile(filepath.Join(configDir, "tailnet.hujson"), []byte(e2eConfig(1)), 0o644); err != nil {
		t.Fatal(err)
	}
	url := startServeBinary(t, ctx, bin, configDir, filepath.Join(root, "state"), tc)
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("serve URL %q is not https", url)
	}

	nodes := map[string]*tailscaled.Node{}
	for _, name := range []string{"alpha", "beta"} {
		n, err := bins.Start(ctx, filepath.Join(root, name), "SSL_CERT_FILE="+tc.caFile, "TS_DEBUG_ALWAYS_USE_DERP=true")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s tailscaled log (tail):\n%s", name, tail(n.Log(), 60))
			}
			n.Close()
		})
		if out, err := n.Tailscale(ctx, "up", "--login-server="+url, "--auth-key="+aliceKey, "--hostname="+name); err != nil {
			t.Fatalf("%s: tailscale up over https: %v\n%s", name, err, out)
		}
		nodes[name] = n
	}
	waitFor(t, ctx, "alpha to ping beta through the TLS relay", func() (bool, string) {
		out, _ := nodes["alpha"].Tailscale(ctx, "ping", "--c=3", "--timeout=5s", "beta")
		return strings.Contains(string(out), "pong from beta") && strings.Contains(string(out), "via DERP(tailplane)"), string(out)
	})
}
