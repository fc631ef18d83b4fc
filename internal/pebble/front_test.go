package pebble

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFront: the proxy adds the order's Location to finalize responses
// that lack one and passes everything else, the Host header included,
// through unchanged.
func TestFront(t *testing.T) {
	backend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Host", r.Host)
		if strings.HasPrefix(r.URL.Path, "/finalize-order/has-location") {
			w.Header().Set("Location", "https://elsewhere/my-order/x")
		}
		w.Write([]byte("ok"))
	}))
	defer backend.Close()
	pool := x509.NewCertPool()
	pool.AddCert(backend.Certificate())
	f, err := startFront(strings.TrimPrefix(backend.URL, "https://"), backend.TLS.Certificates[0], pool)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer c.CloseIdleConnections()
	tests := []struct {
		path, wantLocation string
	}{
		{"/finalize-order/abc123", "https://" + f.addr() + "/my-order/abc123"},
		{"/finalize-order/has-location", "https://elsewhere/my-order/x"},
		{"/my-order/abc123", ""},
		{"/dir", ""},
	}
	for _, tt := range tests {
		res, err := c.Post("https://"+f.addr()+tt.path, "application/jose+json", nil)
		if err != nil {
			t.Fatalf("POST %s: %v", tt.path, err)
		}
		res.Body.Close()
		got := []string{res.Header.Get("Location"), res.Header.Get("X-Seen-Host")}
		if diff := cmp.Diff([]string{tt.wantLocation, f.addr()}, got); diff != "" {
			t.Errorf("POST %s: Location and the Host Pebble saw (-want +got):\n%s", tt.path, diff)
		}
	}
}
