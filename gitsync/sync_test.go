package gitsync

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/internal/testkit"
)

var (
	v1 = map[string]string{"tailnet.hujson": `{"users": ["alice@example.com"]}`, "acls/base.hujson": `{"acls": []}`}
	v2 = map[string]string{"tailnet.hujson": `{"users": ["alice@example.com", "bob@example.com"]}`, "acls/base.hujson": `{"acls": []}`}
	v3 = map[string]string{"tailnet.hujson": `{"users": ["carol@example.com"]}`}
)

// syncRev runs one check and fails unless it succeeds.
func syncRev(t *testing.T, s *syncer) *Revision {
	t.Helper()
	rev, err := s.sync(testContext(t))
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return rev
}

func wantRev(t *testing.T, rev *Revision, id string, files map[string]string) {
	t.Helper()
	if rev == nil {
		t.Fatalf("no revision, want %s", id)
	}
	if rev.ID != id {
		t.Errorf("revision %s, want %s", rev.ID, id)
	}
	if diff := cmp.Diff(files, readAll(t, rev.FS)); diff != "" {
		t.Errorf("revision %s files (-want +got):\n%s", shortID(id), diff)
	}
}

// TestSyncTransports follows a repository over each transport: the first
// check emits the head with its tree, an unchanged remote emits nothing, a
// new commit is emitted, and a force push is followed.
func TestSyncTransports(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  func(*testing.T, *upstream) string
	}{
		{"file", func(t *testing.T, u *upstream) string { return u.fileURL() }},
		{"path", func(t *testing.T, u *upstream) string { return u.bare }},
		{"http", func(t *testing.T, u *upstream) string {
			return testkit.StartGitServer(t, testkit.GitServerConfig{Root: u.root}).URL("tailnet.git")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpstream(t)
			c1 := u.commit("first", v1, commitOpts{})
			s := newSyncer(t, Config{URL: tc.url(t, u)})

			rev := syncRev(t, s)
			wantRev(t, rev, c1, v1)
			if rev.Author != "Alice Admin <alice@example.com>" || rev.Message != "first" || rev.Verified != "" {
				t.Errorf("metadata: author %q message %q verified %q", rev.Author, rev.Message, rev.Verified)
			}
			if err := fstest.TestFS(rev.FS, "tailnet.hujson", "acls/base.hujson"); err != nil {
				t.Error(err)
			}

			if rev := syncRev(t, s); rev != nil {
				t.Fatalf("unchanged remote emitted %s again", rev.ID)
			}

			c2 := u.commit("second", v2, commitOpts{})
			wantRev(t, syncRev(t, s), c2, v2)

			c3 := u.commit("rewritten", v3, commitOpts{rewrite: true})
			wantRev(t, syncRev(t, s), c3, v3)
			if rev := syncRev(t, s); rev != nil {
				t.Fatalf("unchanged remote after force push emitted %s again", rev.ID)
			}

			// The first revision is immutable: still the v1 tree.
			if diff := cmp.Diff(v1, readAll(t, rev.FS)); diff != "" {
				t.Errorf("first revision changed (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSyncFreshStore checks the periodic fresh store: after freshEvery
// fetches the next head is fetched into an empty store and still emitted.
func TestSyncFreshStore(t *testing.T) {
	u := newUpstream(t)
	u.commit("first", v1, commitOpts{})
	s := newSyncer(t, Config{URL: u.fileURL()})
	syncRev(t, s)
	old := s.repo
	s.fetches = freshEvery
	c2 := u.commit("second", v2, commitOpts{})
	wantRev(t, syncRev(t, s), c2, v2)
	if s.repo == old {
		t.Error("store not replaced after freshEvery fetches")
	}
}

// TestSyncCacheDir keeps the clone on disk: a second syncer on the same
// cache directory emits the head again (a restarted server needs its
// current config) and follows new commits.
func TestSyncCacheDir(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit("first", v1, commitOpts{})
	cache := t.TempDir()
	cfg := Config{URL: u.fileURL(), CacheDir: cache}
	wantRev(t, syncRev(t, newSyncer(t, cfg)), c1, v1)
	entries, err := os.ReadDir(cache)
	if err != nil || len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), ".git") {
		t.Fatalf("cache dir holds %v (%v), want one repo-*.git", entries, err)
	}
	// A cache whose config got corrupted is started afresh.
	if err := os.WriteFile(filepath.Join(cache, entries[0].Name(), "config"), []byte("[broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newSyncer(t, cfg)
	wantRev(t, syncRev(t, s), c1, v1)
	c2 := u.commit("second", v2, commitOpts{})
	wantRev(t, syncRev(t, s), c2, v2)
	c3 := u.commit("rewritten", v3, commitOpts{rewrite: true})
	wantRev(t, syncRev(t, s), c3, v3)

	// Damage the cached head commit and restart: the store cannot give
	// the commit its refs claim, so the fetch is redone into a fresh one.
	obj := filepath.Join(cache, entries[0].Name(), "objects", c3[:2], c3[2:])
	if err := os.WriteFile(obj, []byte("not a git object"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs []string
	cfg.Logf = func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	s = newSyncer(t, cfg)
	wantRev(t, syncRev(t, s), c3, v3)
	if !slices.ContainsFunc(logs, func(l string) bool { return strings.Contains(l, "fresh store false) failed") }) {
		t.Errorf("the fetch into the damaged store did not fail and fall back; logs: %q", logs)
	}
}

// TestSyncPath roots revisions at Config.Path; a commit without that
// directory is refused until one restores it.
func TestSyncPath(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit("first", map[string]string{"README.md": "hi", "deploy/tailnet/a.hujson": "{}", "deploy/tailnet/sub/b.hujson": "[]"}, commitOpts{})
	s := newSyncer(t, Config{URL: u.fileURL(), Path: "/deploy/tailnet/"})
	wantRev(t, syncRev(t, s), c1, map[string]string{"a.hujson": "{}", "sub/b.hujson": "[]"})

	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"missing", map[string]string{"README.md": "moved"}, `path "deploy/tailnet" not found`},
		{"file", map[string]string{"deploy/tailnet": "not a dir"}, `path "deploy/tailnet" is not a directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := u.commit(tc.name, tc.files, commitOpts{})
			for range 2 { // refused, and still refused on the next check
				rev, err := s.sync(testContext(t))
				if rev != nil || KindOf(err) != ErrNeedsCommit || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), shortID(c)) {
					t.Fatalf("sync = %v, %v; want ErrNeedsCommit %q for %s", rev, err, tc.want, shortID(c))
				}
			}
		})
	}
	c4 := u.commit("restored", map[string]string{"deploy/tailnet/a.hujson": "{ }"}, commitOpts{})
	wantRev(t, syncRev(t, s), c4, map[string]string{"a.hujson": "{ }"})
}

// TestSyncVerify emits only commits signed by a key in the keyring.
func TestSyncVerify(t *testing.T) {
	alice, keyring := newKey(t, "Alice", "alice@example.com")
	mallory, _ := newKey(t, "Mallory", "mallory@example.com")
	u := newUpstream(t)
	c1 := u.commit("signed", v1, commitOpts{signKey: alice})
	s := newSyncer(t, Config{URL: u.fileURL(), VerifyKeyring: keyring})
	rev := syncRev(t, s)
	wantRev(t, rev, c1, v1)
	if rev.Verified != "Alice <alice@example.com>" {
		t.Errorf("Verified = %q, want Alice's identity", rev.Verified)
	}
	for _, tc := range []struct {
		name string
		opts commitOpts
		want string
	}{
		{"unsigned", commitOpts{}, "not signed"},
		{"untrusted", commitOpts{signKey: mallory}, "signature does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := u.commit(tc.name, v2, tc.opts)
			rev, err := s.sync(testContext(t))
			if rev != nil || KindOf(err) != ErrNeedsCommit || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), shortID(c)) {
				t.Fatalf("sync = %v, %v; want ErrNeedsCommit %q for %s", rev, err, tc.want, shortID(c))
			}
		})
	}
	c4 := u.commit("signed again", v3, commitOpts{signKey: alice})
	wantRev(t, syncRev(t, s), c4, v3)

	// A refused head is checked again once the trusted keys change.
	c5 := u.commit("by mallory", v1, commitOpts{signKey: mallory})
	if _, err := s.sync(testContext(t)); KindOf(err) != ErrNeedsCommit {
		t.Fatalf("mallory's commit: %v, want refused", err)
	}
	writeKeyring(t, keyring, alice, mallory)
	rev = syncRev(t, s)
	wantRev(t, rev, c5, v1)
	if rev.Verified != "Mallory <mallory@example.com>" {
		t.Errorf("Verified = %q, want Mallory's identity", rev.Verified)
	}
}

// TestSyncHTTPAuth puts git-http-backend behind basic or bearer auth.
func TestSyncHTTPAuth(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit("first", v1, commitOpts{})
	const token = "s3cret-token"
	authorized := func(r *http.Request) bool {
		if user, pass, ok := r.BasicAuth(); ok {
			return user == "x-access-token" && pass == token || user == "ci" && pass == token
		}
		return r.Header.Get("Authorization") == "Bearer "+token
	}
	srv := testkit.StartGitServer(t, testkit.GitServerConfig{Root: u.root, Wrap: func(backend http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !authorized(r) {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			backend.ServeHTTP(w, r)
		})
	}})
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(good, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GITSYNC_TEST_TOKEN", token)
	for _, tc := range []struct {
		name string
		auth Auth
		want string // error substring; empty: success
	}{
		{"token-file", Auth{PasswordFile: good}, ""},
		{"user-and-env", Auth{Username: "ci", PasswordEnv: "GITSYNC_TEST_TOKEN"}, ""},
		{"bearer", Auth{PasswordFile: good, Bearer: true}, ""},
		{"anonymous", Auth{}, "authentication required"},
		{"wrong-token", Auth{PasswordFile: bad}, "authentication required"},
		{"missing-file", Auth{PasswordFile: filepath.Join(dir, "nope")}, "read secret"},
		{"unset-env", Auth{PasswordEnv: "GITSYNC_TEST_UNSET"}, "GITSYNC_TEST_UNSET is empty or unset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSyncer(t, Config{URL: srv.URL("tailnet.git"), Auth: tc.auth})
			rev, err := s.sync(testContext(t))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				wantRev(t, rev, c1, v1)
				return
			}
			if rev != nil || KindOf(err) != ErrRetry || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("sync = %v, %v; want ErrRetry containing %q", rev, err, tc.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no-url", Config{}, "no repository URL"},
		{"password-in-url", Config{URL: "https://bob:hunter2@example.com/t.git"}, "carries credentials"},
		{"token-in-url", Config{URL: "https://ghp_token@example.com/t.git"}, "carries credentials"},
		{"both-secrets", Config{URL: "https://example.com/t.git", Auth: Auth{PasswordFile: "f", PasswordEnv: "E"}}, "not both"},
		{"escaping-path", Config{URL: "https://example.com/t.git", Path: "../etc"}, "relative directory"},
		{"missing-keyring", Config{URL: "https://example.com/t.git", VerifyKeyring: "/nonexistent/keys.asc"}, "read verify keyring"},
		{"missing-allowed-signers", Config{URL: "https://example.com/t.git", VerifyAllowedSigners: "/nonexistent/allowed"}, "read allowed signers"},
		{"ca-not-pem", Config{URL: "https://example.com/t.git", CAFile: "sync_test.go"}, "no PEM certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRepo(testContext(t), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewRepo error = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSyncTimeout points at a server that accepts requests and never
// answers: the check gives up after Config.Timeout.
func TestSyncTimeout(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-hang:
		}
	}))
	defer srv.Close()
	defer close(hang)
	s := newSyncer(t, Config{URL: srv.URL + "/tailnet.git", Timeout: 50 * time.Millisecond})
	rev, err := s.syncTimeout(testContext(t))
	if rev != nil || KindOf(err) != ErrRetry || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Fatalf("sync = %v, %v; want a timeout", rev, err)
	}
}

func TestSyncMissingBranch(t *testing.T) {
	u := newUpstream(t)
	u.commit("first", v1, commitOpts{})
	rev, err := newSyncer(t, Config{URL: u.fileURL(), Branch: "prod"}).sync(testContext(t))
	if want := `no branch "prod" (hint: check --branch; the remote has ["main"])`; rev != nil || KindOf(err) != ErrRetry || !strings.Contains(err.Error(), want) {
		t.Fatalf("sync = %v, %v; want ErrRetry containing %q", rev, err, want)
	}
}

// TestSyncHTTPS trusts a private CA only when given as Config.CAFile.
func TestSyncHTTPS(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit("first", v1, commitOpts{})
	srv := testkit.StartGitServer(t, testkit.GitServerConfig{Root: u.root, TLS: true})
	ca := srv.CAFile()
	rev, err := newSyncer(t, Config{URL: srv.URL("tailnet.git")}).sync(testContext(t))
	if rev != nil || KindOf(err) != ErrRetry || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: sync = %v, %v; want a certificate error", rev, err)
	}
	wantRev(t, syncRev(t, newSyncer(t, Config{URL: srv.URL("tailnet.git"), CAFile: ca})), c1, v1)
}
