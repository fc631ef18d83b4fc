// Package pebble builds Let's Encrypt's Pebble ACME test server (the
// version tailplane's go.mod pins, github.com/letsencrypt/pebble/v2) once
// into the test cache and runs it on loopback for end-to-end tests, its
// DNS-01 checks sent to a DNS server of the test's choosing.
package pebble

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tailplane/tailplane/internal/tailscaled"
)

const module = "github.com/letsencrypt/pebble/v2"

// Build returns the path of the cached pebble binary, building it from the
// module cache first if it is missing.
func Build(ctx context.Context) (string, error) {
	version, _, err := moduleInfo(ctx)
	if err != nil {
		return "", err
	}
	base, err := tailscaled.CacheBase()
	if err != nil {
		return "", err
	}
	cache := filepath.Join(base, "pebble-"+version)
	if err := tailscaled.BuildInto(ctx, cache, "", module+"/cmd/pebble"); err != nil {
		return "", fmt.Errorf("pebble: building %s: %w", version, err)
	}
	return filepath.Join(cache, "pebble"), nil
}

// moduleInfo returns the pinned Pebble version and its directory in the
// module cache (downloading it when missing).
func moduleInfo(ctx context.Context) (version, dir string, err error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}} {{.Dir}}", module)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("pebble: finding %s in go.mod: %w: %s", module, err, stderr.Bytes())
	}
	version, dir, _ = strings.Cut(strings.TrimSpace(string(out)), " ")
	if dir == "" {
		dl := exec.CommandContext(ctx, "go", "mod", "download", "-json", module)
		out, err := dl.Output()
		if err != nil {
			return "", "", fmt.Errorf("pebble: downloading %s: %w", module, err)
		}
		var info struct{ Dir string }
		if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
			return "", "", fmt.Errorf("pebble: go mod download %s gave no directory", module)
		}
		dir = info.Dir
	}
	return version, dir, nil
}

// Pebble is a running Pebble.
type Pebble struct {
	// DirectoryURL is the ACME directory, https://127.0.0.1:PORT/dir, served
	// through a proxy that adds the Location header Pebble omits from
	// finalize responses (see front).
	DirectoryURL string
	// Roots holds the root that signs the certificates Pebble issues (a new
	// one every start).
	Roots *x509.CertPool
	// CAFile is a PEM file with both the CA of Pebble's own HTTPS
	// listeners and the issuing root: what a client's SSL_CERT_FILE needs
	// to talk ACME to Pebble and to trust what it issued.
	CAFile string

	cmd    *exec.Cmd
	front  *front
	log    *os.File
	exited chan struct{}
}

// Start runs Pebble with its files in dir, sending every DNS query of its
// validation (DNS-01 TXT lookups) to dnsServer (host:port). Validation is
// real: no PEBBLE_VA_ALWAYS_VALID, no sleeps, no random nonce rejection,
// and every order is validated afresh (no authorization reuse).
func Start(ctx context.Context, dir, dnsServer string) (*Pebble, error) {
	bin, err := Build(ctx)
	if err != nil {
		return nil, err
	}
	_, modDir, err := moduleInfo(ctx)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	certs := filepath.Join(modDir, "test", "certs")
	var conf struct {
		Pebble map[string]any `json:"pebble"`
	}
	conf.Pebble = map[string]any{
		"listenAddress":           "127.0.0.1:" + strconv.Itoa(ports[0]),
		"managementListenAddress": "127.0.0.1:" + strconv.Itoa(ports[1]),
		"certificate":             filepath.Join(certs, "localhost", "cert.pem"),
		"privateKey":              filepath.Join(certs, "localhost", "key.pem"),
		"httpPort":                ports[2],
		"tlsPort":                 ports[3],
		"keyAlgorithm":            "ecdsa",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	confFile := filepath.Join(dir, "pebble-config.json")
	b, _ := json.Marshal(conf)
	if err := os.WriteFile(confFile, b, 0o644); err != nil {
		return nil, err
	}
	p := &Pebble{DirectoryURL: "https://127.0.0.1:" + strconv.Itoa(ports[0]) + "/dir", exited: make(chan struct{})}
	if p.log, err = os.Create(filepath.Join(dir, "pebble.log")); err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, "-config", confFile, "-dnsserver", dnsServer, "-strict")
	p.cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_VA_ALWAYS_VALID=0", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.log.Close()
		return nil, fmt.Errorf("pebble: starting %s: %w", bin, err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	minica, err := os.ReadFile(filepath.Join(certs, "pebble.minica.pem"))
	if err != nil {
		p.Close()
		return nil, err
	}
	root, err := p.waitRoot(ctx, minica, "https://127.0.0.1:"+strconv.Itoa(ports[1])+"/roots/0")
	if err != nil {
		p.Close()
		return nil, err
	}
	p.Roots = x509.NewCertPool()
	if !p.Roots.AppendCertsFromPEM(root) {
		p.Close()
		return nil, fmt.Errorf("pebble: its root is not PEM: %.200q", root)
	}
	if err := p.startFront(certs, "127.0.0.1:"+strconv.Itoa(ports[0])); err != nil {
		p.Close()
		return nil, err
	}
	p.CAFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(p.CAFile, append(append(minica, '\n'), root...), 0o644); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// startFront puts the front proxy before Pebble's listener at backend and
// points DirectoryURL at it.
func (p *Pebble) startFront(certs, backend string) error {
	cert, err := tls.LoadX509KeyPair(filepath.Join(certs, "localhost", "cert.pem"), filepath.Join(certs, "localhost", "key.pem"))
	if err != nil {
		return fmt.Errorf("pebble: loading its listener certificate: %w", err)
	}
	minica, err := os.ReadFile(filepath.Join(certs, "pebble.minica.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(minica)
	if p.front, err = startFront(backend, cert, pool); err != nil {
		return fmt.Errorf("pebble: starting its front proxy: %w", err)
	}
	p.DirectoryURL = "https://" + p.front.addr() + "/dir"
	return nil
}

// waitRoot waits for the ACME directory to answer and fetches the issuing
// root from the management interface.
func (p *Pebble) waitRoot(ctx context.Context, minica []byte, rootURL string) ([]byte, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(minica) {
		return nil, errors.New("pebble: pebble.minica.pem holds no certificate")
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer c.CloseIdleConnections()
	get := func(url string) ([]byte, error) {
		res, err := c.Get(url)
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err == nil && res.StatusCode != 200 {
			err = fmt.Errorf("GET %s: %s", url, res.Status)
		}
		return b, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := get(p.DirectoryURL)
		if err == nil {
			return get(rootURL)
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("pebble exited early; log:\n%s", p.Log())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("pebble did not answer %s in 60s (%v); log:\n%s", p.DirectoryURL, err, p.Log())
		}
	}
}

// Log returns what Pebble printed so far.
func (p *Pebble) Log() string {
	b, _ := os.ReadFile(p.log.Name())
	return string(b)
}

// Close stops Pebble and waits for it to exit.
func (p *Pebble) Close() error {
	if p.front != nil {
		p.front.close()
	}
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
	return p.log.Close()
}

// freePorts returns n distinct free loopback TCP ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pebble: no free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
