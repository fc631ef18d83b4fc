package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/gitsync"
	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/store"
)

// gitToken is the secret the remote wants. It is distinctive so that a
// leak in any form is found by a plain substring search.
const gitToken = "tpgit_Q7xV2mK9wR4sT1uY"

// tokenGitServer serves a bare repository with one commit over smart HTTP
// (the real git-http-backend). Requests without the token get 401. With
// echoAt set, requests whose path ends in it are refused with 401 even
// with the token, with an error page that echoes the credentials sent, as
// some servers and proxies do.
func tokenGitServer(t *testing.T, echoAt string) string {
	t.Helper()
	testkit.RequireGit(t)
	root, work := t.TempDir(), t.TempDir()
	testkit.Git(t, root, "init", "-q", "--bare", "tailnet.git")
	testkit.Git(t, work, "init", "-q")
	if err := os.WriteFile(filepath.Join(work, "policy.hujson"), []byte(`{"settings": {"name": "leak-test"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.Git(t, work, "add", "-A")
	testkit.Git(t, work, "commit", "-q", "-m", "first")
	testkit.Git(t, work, "push", "-q", filepath.Join(root, "tailnet.git"), "HEAD:refs/heads/main")
	srv := testkit.StartGitServer(t, testkit.GitServerConfig{Root: root, Wrap: func(backend http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, pass, _ := r.BasicAuth()
			authed := pass == gitToken || r.Header.Get("Authorization") == "Bearer "+gitToken
			if !authed || echoAt != "" && strings.HasSuffix(r.URL.Path, echoAt) {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintf(w, "credentials refused: Authorization: %s (password %q)\n", r.Header.Get("Authorization"), pass)
				return
			}
			backend.ServeHTTP(w, r)
		})
	}})
	return srv.URL("tailnet.git")
}

// deadURL is an http URL nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/tailnet.git"
}

// TestStatusHidesGitCredentials follows a real Git server with a token
// given through the supported mechanisms (a file, an environment
// variable), makes every check fail (an auth error whose page echoes the
// credentials sent, at the ref listing or at the fetch; a network error),
// and searches the whole log and the JSON of GET /api/v1/status (open
// before the first apply) for the token in every form it was sent in. A
// URL carrying the token is refused without echoing it.
func TestStatusHidesGitCredentials(t *testing.T) {
	const env = "TAILPLANE_TEST_GIT_TOKEN"
	t.Setenv(env, gitToken)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(gitToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	leaks := []string{ // the token is URL-safe: escaping it changes nothing
		gitToken,
		base64.StdEncoding.EncodeToString([]byte("x-access-token:" + gitToken)),
		base64.StdEncoding.EncodeToString([]byte("ci:" + gitToken)),
	}
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string
		auth gitsync.Auth
		want string // in the status error: the failure is the one meant
	}{
		{"list-refused-echo-basic-file", func(t *testing.T) string { return tokenGitServer(t, "/info/refs") },
			gitsync.Auth{PasswordFile: tokenFile}, "authentication required"},
		{"list-refused-echo-basic-env", func(t *testing.T) string { return tokenGitServer(t, "/info/refs") },
			gitsync.Auth{Username: "ci", PasswordEnv: env}, "authentication required"},
		{"list-refused-echo-bearer", func(t *testing.T) string { return tokenGitServer(t, "/info/refs") },
			gitsync.Auth{PasswordEnv: env, Bearer: true}, "authentication required"},
		{"fetch-refused-echo", func(t *testing.T) string { return tokenGitServer(t, "/git-upload-pack") },
			gitsync.Auth{PasswordFile: tokenFile}, "authentication required"},
		{"remote-down", deadURL, gitsync.Auth{PasswordEnv: env}, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var logs testkit.LogBuffer
			st, err := store.Open(ctx, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			src, err := gitsync.NewRepo(ctx, gitsync.Config{
				URL: tc.url(t), Auth: tc.auth, Poll: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Logf: logs.Logf,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			loop := startPipeline(t, ctx, st, src, logs.Logf)
			defer loop.Close()
			hs := httptest.NewServer(Handler(Config{Pipeline: loop.Pipeline, Served: loop.Applied, Store: st}))
			defer hs.Close()

			var body []byte
			var status Status
			deadline := time.Now().Add(20 * time.Second)
			for {
				var code int
				code, body = call(t, "GET", hs.URL+"/api/v1/status", "", nil, nil)
				if code != http.StatusOK {
					t.Fatalf("status: %d %s", code, body)
				}
				if err := json.Unmarshal(body, &status); err != nil {
					t.Fatal(err)
				}
				if status.Source.Failures >= 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the source never failed three times in a row: %s", body)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if !strings.Contains(status.Source.Error, tc.want) {
				t.Errorf("source error %q does not show the failure meant (%q)", status.Source.Error, tc.want)
			}
			t.Logf("source error: %s", status.Source.Error)
			log := logs.String()
			if !strings.Contains(log, "gitsync: ") {
				t.Errorf("no gitsync failure was logged:\n%s", log)
			}
			for _, secret := range leaks {
				if strings.Contains(string(body), secret) {
					t.Errorf("GET /api/v1/status shows the credential %q:\n%s", secret, body)
				}
				if strings.Contains(log, secret) {
					t.Errorf("the log shows the credential %q:\n%s", secret, log)
				}
			}
		})
	}
	t.Run("token-in-url", func(t *testing.T) {
		for _, u := range []string{
			"https://" + gitToken + "@git.example.com/infra/tailnet.git",
			"http://x-access-token:" + gitToken + "@127.0.0.1:1/tailnet.git",
			"HTTPS://" + url.QueryEscape(gitToken) + "@git.example.com/tailnet.git",
		} {
			_, err := gitsync.NewRepo(context.Background(), gitsync.Config{URL: u})
			if err == nil {
				t.Fatalf("NewRepo accepted %s", u)
			}
			if strings.Contains(err.Error(), gitToken) {
				t.Errorf("the error shows the token: %v", err)
			}
			if !strings.Contains(err.Error(), "--git-password-file") {
				t.Errorf("the error does not point to the supported credential flags: %v", err)
			}
		}
	})
}
