package pebble

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// front is a reverse proxy in front of Pebble's ACME listener that adds
// the one thing Tailscale's ACME client needs and Pebble leaves out: a
// Location header (the order's URL) on the finalize response. Let's
// Encrypt's Boulder sends it; Pebble does not, and tailscaled's fork of
// x/crypto/acme (tempfork/acme, without x/crypto's later
// CreateCertFromOrder) then polls an empty URL and fails with
// `CreateOrder: Post "": unsupported protocol scheme ""`. Everything else
// passes through unchanged: the Host header is kept, so Pebble's URLs
// and its JWS URL checks name the proxy.
type front struct {
	ln  net.Listener
	srv *http.Server
}

// startFront serves the proxy on a free loopback port with Pebble's
// listener certificate cert, forwarding to backend (host:port), whose
// certificate the minica pool verifies.
func startFront(backend string, cert tls.Certificate, minica *x509.CertPool) (*front, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	target := &url.URL{Scheme: "https", Host: backend}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: minica}},
		ModifyResponse: func(res *http.Response) error {
			id, ok := strings.CutPrefix(res.Request.URL.Path, "/finalize-order/")
			if ok && res.StatusCode == http.StatusOK && res.Header.Get("Location") == "" {
				res.Header.Set("Location", "https://"+res.Request.Host+"/my-order/"+id)
			}
			return nil
		},
	}
	f := &front{ln: ln, srv: &http.Server{Handler: rp, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}}
	go f.srv.ServeTLS(ln, "", "")
	return f, nil
}

// addr is the proxy's host:port.
func (f *front) addr() string { return f.ln.Addr().String() }

func (f *front) close() error { return f.srv.Close() }
