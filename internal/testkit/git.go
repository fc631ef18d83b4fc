package testkit

import (
	"bytes"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// RequireGit returns git's exec path (where git-upload-pack and
// git-http-backend live), failing t when the git CLI is not on PATH.
func RequireGit(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("these tests need the git CLI on PATH (apt-get install git): %v", err)
	}
	return strings.TrimSpace(string(out))
}

// GitAuthor is who Git commits as.
const GitAuthor = "Alice Admin <alice@example.com>"

// Git runs the git CLI in dir as GitAuthor, with commit signing off and
// main as the default branch, and returns what it wrote to stdout,
// trimmed. A failure fails t with what git wrote to stderr.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return GitInput(t, dir, nil, args...)
}

// GitInput is Git with stdin read from in (nil: none), for git's plumbing
// (hash-object --stdin, mktree).
func GitInput(t testing.TB, dir string, in io.Reader, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=Alice Admin", "-c", "user.email=alice@example.com",
		"-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Stdin = in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// GitServerConfig configures StartGitServer. Only Root must be set.
type GitServerConfig struct {
	// Root is the directory holding the bare repositories served
	// (git-http-backend's GIT_PROJECT_ROOT).
	Root string
	// Wrap, when set, wraps git-http-backend's handler: to refuse requests
	// (without credentials, say) or to watch what is sent. Nil serves git
	// as it is.
	Wrap func(backend http.Handler) http.Handler
	// TLS serves https with httptest's certificate, which CAFile holds.
	// False serves plain http.
	TLS bool
}

// GitServer serves the repositories under a directory over smart HTTP
// with the real git-http-backend (through net/http/cgi), on a loopback
// port. It can be stopped and started again on the same address, to take
// a remote down and bring it back.
type GitServer struct {
	t       testing.TB
	handler http.Handler
	tls     bool
	caFile  string
	addr    string // set by the first Start; kept across restarts

	mu  sync.Mutex // guards the field below
	srv *httptest.Server
}

// StartGitServer starts serving cfg.Root and stops when the test ends.
func StartGitServer(t testing.TB, cfg GitServerConfig) *GitServer {
	t.Helper()
	var h http.Handler = &cgi.Handler{
		Path:       filepath.Join(RequireGit(t), "git-http-backend"),
		Env:        []string{"GIT_PROJECT_ROOT=" + cfg.Root, "GIT_HTTP_EXPORT_ALL=1"},
		InheritEnv: []string{"PATH", "HOME"},
	}
	if cfg.Wrap != nil {
		h = cfg.Wrap(h)
	}
	s := &GitServer{t: t, handler: h, tls: cfg.TLS}
	s.Start()
	t.Cleanup(s.Stop)
	if cfg.TLS {
		s.caFile = filepath.Join(t.TempDir(), "ca.pem")
		block := &pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw}
		if err := os.WriteFile(s.caFile, pem.EncodeToMemory(block), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Start serves again after Stop, on the address served before. It fails
// the test when that address is taken meanwhile.
func (s *GitServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return
	}
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatalf("git server: listen %s: %v", addr, err)
	}
	s.srv = httptest.NewUnstartedServer(s.handler)
	s.srv.Listener = l
	if s.tls {
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	s.addr = l.Addr().String()
}

// Stop closes the listener and every connection, so the remote is down
// until Start. Stopping a stopped server does nothing.
func (s *GitServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// URL is the URL of the repository at path repo below Root, e.g.
// "tailnet.git".
func (s *GitServer) URL(repo string) string {
	scheme := "http://"
	if s.tls {
		scheme = "https://"
	}
	return scheme + s.addr + "/" + repo
}

// CAFile is a PEM file holding the certificate that signs the server's
// with TLS set; it is empty without.
func (s *GitServer) CAFile() string { return s.caFile }
