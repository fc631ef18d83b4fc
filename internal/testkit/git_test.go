package testkit

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// lsRemote lists the heads of url with the git CLI; env adds settings.
func lsRemote(url string, env ...string) (string, error) {
	cmd := exec.Command("git", "ls-remote", "--heads", url)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// A GitServer serves the repositories under Root to the git CLI, through
// Wrap, over http or https; stopped, the remote is down; started again, it
// serves on the same URL.
func TestGitServer(t *testing.T) {
	root, work := t.TempDir(), t.TempDir()
	Git(t, root, "init", "-q", "--bare", "tailnet.git")
	Git(t, work, "init", "-q")
	if err := os.WriteFile(filepath.Join(work, "policy.hujson"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	Git(t, work, "add", "-A")
	Git(t, work, "commit", "-q", "-m", "first")
	Git(t, work, "push", "-q", filepath.Join(root, "tailnet.git"), "HEAD:refs/heads/main")
	head := Git(t, work, "rev-parse", "HEAD")
	want := head + "\trefs/heads/main"

	for _, tls := range []bool{false, true} {
		name := map[bool]string{false: "http", true: "https"}[tls]
		t.Run(name, func(t *testing.T) {
			var requests atomic.Int64
			s := StartGitServer(t, GitServerConfig{Root: root, TLS: tls, Wrap: func(backend http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					requests.Add(1)
					backend.ServeHTTP(w, r)
				})
			}})
			url := s.URL("tailnet.git")
			if !strings.HasPrefix(url, name+"://127.0.0.1:") {
				t.Errorf("URL = %q, want %s on loopback", url, name)
			}
			var env []string
			if tls {
				env = []string{"GIT_SSL_CAINFO=" + s.CAFile()}
			} else if s.CAFile() != "" {
				t.Errorf("CAFile = %q without TLS, want empty", s.CAFile())
			}
			if got, err := lsRemote(url, env...); err != nil || got != want {
				t.Fatalf("git ls-remote %s = %q, %v; want %q", url, got, err, want)
			}
			if requests.Load() == 0 {
				t.Error("the request did not go through Wrap's handler")
			}
			s.Stop()
			if got, err := lsRemote(url, env...); err == nil {
				t.Fatalf("git ls-remote while stopped = %q, want a failure", got)
			}
			s.Start()
			if got, err := lsRemote(url, env...); err != nil || got != want {
				t.Fatalf("git ls-remote after Start = %q, %v; want %q", got, err, want)
			}
		})
	}
}
