package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/pipeline"
	"github.com/tailplane/tailplane/reconcile"
)

const testAPIKey = "tpk-cli-test-0123456789"

// runToolEnv runs the CLI in-process with the given environment. Its
// output buffers take writes from several goroutines, as serve logs from
// its sync loop.
func runToolEnv(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb lockedBuffer
	env := &cliEnv{stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}
	code = runCLI(context.Background(), env, args)
	return code, out.String(), errb.String()
}

// configRepo copies examples/basic plus an admin API key into dir.
func configRepo(t *testing.T, dir string) {
	t.Helper()
	src := filepath.Join(repoRoot, "examples", "basic")
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "api.hujson"), []byte(`{"apiKeys": {"cli": {"role": "read", "secretHash": "`+testkit.SecretHash(testAPIKey)+`"}}}`), 0o644)
}

// TestServeRepoStatusPlan runs `serve --repo` on a file:// remote and
// talks to it with `status` and `plan --server`.
func TestServeRepoStatusPlan(t *testing.T) {
	work, bare := t.TempDir(), filepath.Join(t.TempDir(), "tailnet.git")
	testkit.Git(t, work, "init", "-q")
	testkit.Git(t, filepath.Dir(bare), "init", "-q", "--bare", bare)
	configRepo(t, work)
	testkit.Git(t, work, "add", "-A")
	testkit.Git(t, work, "commit", "-q", "-m", "first config")
	testkit.Git(t, work, "push", "-q", bare, "HEAD:refs/heads/main")
	head := testkit.Git(t, work, "rev-parse", "HEAD")

	addr := freeAddr(t)
	url := "http://" + addr
	log := startServe(t, "--repo", "file://"+bare, "--state-dir", t.TempDir(), "--listen", addr, "--poll", "1h")
	withKey := map[string]string{envAPIKey: testAPIKey}

	var out string
	deadline := time.Now().Add(60 * time.Second)
	for {
		var code int
		var stderr string
		code, out, stderr = runToolEnv(t, withKey, "status", "--server", url)
		if code == exitOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never became healthy: exit %d\n%s%s\nserver log:\n%s", code, out, stderr, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("status:\n%s", out)
	for _, want := range []string{"serving:   " + head[:12] + ` "first config" by ` + testkit.GitAuthor, "attempted: " + head[:12], "source:    file://", "nodes:     0 online / 0 total", "history:"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}

	t.Run("json", func(t *testing.T) {
		code, out, stderr := runToolEnv(t, withKey, "status", "--server", url, "--json")
		var st admin.Status
		if err := json.Unmarshal([]byte(out), &st); code != exitOK || err != nil {
			t.Fatalf("exit %d, %v\n%s%s", code, err, out, stderr)
		}
		if st.Applied == nil || st.Applied.Commit != head || !st.Serving {
			t.Errorf("status --json: %+v", st)
		}
	})

	t.Run("plan-against-server", func(t *testing.T) {
		code, out, stderr := runToolEnv(t, withKey, "plan", work, "--server", url, "--detailed-exitcode")
		if code != exitPlanNoChanges {
			t.Errorf("plan of the applied tree: exit %d\n%s%s", code, out, stderr)
		}
		edited := t.TempDir()
		configRepo(t, edited)
		os.WriteFile(filepath.Join(edited, "carol.hujson"), []byte(`{"users": {"carol@example.com": {}}}`), 0o644)
		code, out, stderr = runToolEnv(t, withKey, "plan", edited, "--server", url, "--detailed-exitcode")
		if code != exitPlanChanges || !strings.Contains(out, "carol@example.com") {
			t.Errorf("plan with a new user: exit %d\n%s%s", code, out, stderr)
		}
		// The read key sees secret hashes masked; plan compares masked
		// with masked, so a rotated key still shows.
		rotated := t.TempDir()
		configRepo(t, rotated)
		os.WriteFile(filepath.Join(rotated, "api.hujson"), []byte(`{"apiKeys": {"cli": {"role": "read", "secretHash": "sha256:`+strings.Repeat("7", 64)+`"}}}`), 0o644)
		code, out, stderr = runToolEnv(t, withKey, "plan", rotated, "--server", url, "--detailed-exitcode")
		if code != exitPlanChanges || !strings.Contains(out, `~ apiKey cli`) || !strings.Contains(out, `"sha256:77777777…"`) {
			t.Errorf("plan with a rotated API key: exit %d\n%s%s", code, out, stderr)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			vars map[string]string
			args []string
			code int
			want string
		}{
			{"no-key", nil, []string{"status", "--server", url}, exitProblems, "missing API key"},
			{"plan-no-key", nil, []string{"plan", work, "--server", url}, exitProblems, "no API key"},
			{"wrong-key", map[string]string{envAPIKey: "nope"}, []string{"status", "--server", url}, exitProblems, "unknown API key"},
			{"no-server", withKey, []string{"status"}, exitUsage, "--server URL is required"},
			{"plan-both", withKey, []string{"plan", work, "--server", url, "--state-dir", "x"}, exitUsage, "--state-dir is required"},
			{"serve-repo-and-config", nil, []string{"serve", "--repo", "file://" + bare, "--config", work, "--state-dir", t.TempDir()}, exitUsage, "not both"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code, _, stderr := runToolEnv(t, tc.vars, tc.args...)
				if code != tc.code || !strings.Contains(stderr, tc.want) {
					t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tc.code, tc.want)
				}
			})
		}
	})
}

// TestServeConfigRefusesBrokenFirstConfig keeps the old contract of
// `serve --config`: a directory that was never applied and does not load
// stops the server from starting. The log says so, and does not claim that
// an applied revision keeps serving.
func TestServeConfigRefusesBrokenFirstConfig(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tailnet.hujson"), []byte(`{"users": {"bob@example.com": {"role": "superhero"}}}`), 0o644)
	code, _, stderr := runTool(t, "serve", "--config", dir, "--state-dir", t.TempDir(), "--listen", "127.0.0.1:0")
	if code != exitProblems || !strings.Contains(stderr, "tailnet.hujson:1:") || !strings.Contains(stderr, "superhero") {
		t.Errorf("exit %d, stderr %q; want a refusal naming tailnet.hujson:1:", code, stderr)
	}
	for _, want := range []string{
		"not applied (needs a new commit; nothing is applied yet, so no tailnet is served and every registration is refused until a revision applies)",
		"and no revision was ever applied in --state-dir",
		"so serve does not start",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the log lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "keeps serving") {
		t.Errorf("the log claims an applied revision keeps serving, but none was ever applied:\n%s", stderr)
	}
}

// TestServeRepoBrokenFirstCommit: `serve --repo` whose first commit does
// not load keeps running (the remote may be fixed any time), logs that
// nothing is served, and its status says so.
func TestServeRepoBrokenFirstCommit(t *testing.T) {
	work, bare := t.TempDir(), filepath.Join(t.TempDir(), "tailnet.git")
	testkit.Git(t, work, "init", "-q")
	testkit.Git(t, filepath.Dir(bare), "init", "-q", "--bare", bare)
	os.WriteFile(filepath.Join(work, "tailnet.hujson"), []byte(`{"users": {"bob@example.com": {"role": "superhero"}}}`), 0o644)
	testkit.Git(t, work, "add", "-A")
	testkit.Git(t, work, "commit", "-q", "-m", "broken")
	testkit.Git(t, work, "push", "-q", bare, "HEAD:refs/heads/main")

	addr := freeAddr(t)
	log := startServe(t, "--repo", "file://"+bare, "--state-dir", t.TempDir(), "--listen", addr, "--poll", "1h")
	const want = "not applied (needs a new commit; nothing is applied yet, so no tailnet is served and every registration is refused until a revision applies)"
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q:\n%s", want, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(log.String(), "keeps serving") {
		t.Errorf("the log claims an applied revision keeps serving, but none was ever applied:\n%s", log.String())
	}
	// Status is open before the first apply.
	code, out, stderr := runTool(t, "status", "--server", "http://"+addr)
	if code != exitProblems || !strings.Contains(out, "serving:   nothing yet") {
		t.Errorf("status: exit %d, want %d and nothing served:\n%s%s", code, exitProblems, out, stderr)
	}
}

// TestServeFirstStartRemoteDown starts with an empty database and a remote
// that does not answer: the server keeps running, serves nothing, and its
// status (open until a first apply) says why.
func TestServeFirstStartRemoteDown(t *testing.T) {
	dead := freeAddr(t) // nothing listens there
	addr := freeAddr(t)
	url := "http://" + addr
	startServe(t, "--repo", "http://"+dead+"/tailnet.git", "--state-dir", t.TempDir(), "--listen", addr, "--poll", "1h")
	var out string
	deadline := time.Now().Add(60 * time.Second)
	for {
		var code int
		code, out, _ = runToolEnv(t, nil, "status", "--server", url)
		if code == exitProblems && strings.Contains(out, "error (retry later") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never reported the remote down: exit %d\n%s", code, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out, "serving:   nothing yet") || !strings.Contains(out, dead) {
		t.Errorf("status of a first start with the remote down:\n%s", out)
	}
	// Only the status is open before the first apply.
	res, err := http.Get(url + "/api/v1/applied")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/applied without a key before the first apply: %s, want 401", res.Status)
	}
}

func TestWriteStatusGolden(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	applied := reconcile.Revision{ID: 12, Commit: "a479ef6884dd1b2c3d4e5f60718293a4b5c6d7e8", Author: "Alice <alice@example.com>",
		Message: "allow the build farm\n\nlong text", AppliedAt: now.Add(-2 * time.Minute), Summary: "Plan: 0 to add, 1 to change, 0 to destroy."}
	st := &admin.Status{
		Serving: true,
		Applied: &applied,
		Attempted: &pipeline.Attempt{
			Revision: reconcile.Revision{Commit: "5be1c0de9a11ffeeddccbbaa0099887766554433", Author: "Bob <bob@example.com>", Message: "typo"},
			Finished: now.Add(-40 * time.Second), Step: pipeline.StepValidate, Class: "needs a new commit",
			Problems: []pipeline.Problem{{Pos: "tailnet.hujson:14:40", Path: `users["bob@example.com"].role`, Message: `unknown role "superhero"`, Hint: `use "owner", "admin" or "member"`}},
		},
		Applying: &reconcile.Revision{Commit: "77aa0c5e1d2b3c4d5e6f708192a3b4c5d6e7f809", Author: "Carol <carol@example.com>", Message: "fix the typo"},
		Source: admin.SourceStatus{URL: "https://git.example.com/infra/tailnet.git", Branch: "main", Path: ".",
			LastSync: now.Add(-3 * time.Second), NextPoll: now.Add(27 * time.Second), Failures: 2,
			Error: "fetching: connection refused", ErrorClass: "retry later"},
		Nodes: admin.NodeCounts{Online: 41, Total: 57},
	}
	var b bytes.Buffer
	writeStatus(&b, "https://tailplane.example.com", st, []reconcile.Revision{applied}, now)
	golden(t, "status.golden", b.String())

	// The JSON of GET /api/v1/status, which `status --json` prints: its
	// field names are an API.
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status.json.golden", string(js)+"\n")
}

// TestServeGitFileFlags: --git-ca-file and --ssh-key-passphrase-file reach
// the Git client: files it cannot use stop serve at startup, naming them.
func TestServeGitFileFlags(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"ca-not-pem", []string{"--repo", "https://git.example.invalid/tailnet.git", "--git-ca-file", notPEM}, "read CA file " + notPEM + ": no PEM certificates"},
		{"ca-missing", []string{"--repo", "https://git.example.invalid/tailnet.git", "--git-ca-file", notPEM + ".gone"}, notPEM + ".gone"},
		{"passphrase-without-key", []string{"--repo", "ssh://git@git.example.invalid/tailnet.git", "--ssh-key-passphrase-file", notPEM}, "passphrase file needs an ssh key file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--state-dir", t.TempDir(), "--listen", "127.0.0.1:0"}, tc.args...)
			code, _, stderr := runTool(t, args...)
			if code != exitProblems || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, exitProblems, tc.want)
			}
		})
	}
}
