package control

import (
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

	"github.com/tailplane/tailplane/internal/testkit"
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
	bins := testkit.TailscaledBinaries(t, "")
	run := startE2E(t, 1, true)
	if !strings.HasPrefix(run.url, "https://") {
		t.Fatalf("serve URL %q is not https", run.url)
	}
	alpha := run.join(t, bins, "alpha", "TS_DEBUG_ALWAYS_USE_DERP=true")
	run.join(t, bins, "beta", "TS_DEBUG_ALWAYS_USE_DERP=true")
	testkit.WaitFor(t, run.ctx, "alpha to ping beta through the TLS relay", func() (bool, string) {
		out, _ := alpha.Tailscale(run.ctx, "ping", "--c=3", "--timeout=5s", "beta")
		return strings.Contains(string(out), "pong from beta") && strings.Contains(string(out), "via DERP(tailplane)"), string(out)
	})
}
