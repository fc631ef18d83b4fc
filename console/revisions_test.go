package console_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/console"
	"github.com/tailplane/tailplane/gitsync"
	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/pipeline"
	"github.com/tailplane/tailplane/server"
)

// TestConsoleRevisionsFromGit follows a real Git repository whose config
// lives under net/: the revisions page shows the applied commit with its
// author and message, and the refused commit's error linked to the file
// at that commit, its path in the repository included.
func TestConsoleRevisionsFromGit(t *testing.T) {
	testkit.RequireGit(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	repo := t.TempDir()
	testkit.Git(t, repo, "init", "-q")
	if err := os.Mkdir(filepath.Join(repo, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, filepath.Join(repo, "net"))
	testkit.Git(t, repo, "add", "-A")
	testkit.Git(t, repo, "commit", "-q", "-m", "the basic tailnet\n\nwith the console's keys")
	first := testkit.Git(t, repo, "rev-parse", "HEAD")
	srv, err := server.New(ctx, server.Config{StateDir: t.TempDir(), Repo: gitsync.Config{URL: repo, Path: "net", Poll: 100 * time.Millisecond},
		RepoWebURL: repoWeb, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if _, err := srv.Pipeline().Wait(ctx, func(st pipeline.Status) bool { return st.Applied != nil }); err != nil {
		t.Fatalf("waiting for the first commit to apply: %v", err)
	}
	bad := "{\n\t\"tagOwners\": {\"tag:oops\": [\"group:nope\"]},\n}\n"
	if err := os.WriteFile(filepath.Join(repo, "net", "bad.hujson"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.Git(t, repo, "add", "-A")
	testkit.Git(t, repo, "commit", "-q", "-m", "an owner nobody declared")
	second := testkit.Git(t, repo, "rev-parse", "HEAD")
	srv.Pipeline().Sync()
	if _, err := srv.Pipeline().Wait(ctx, func(st pipeline.Status) bool { return st.Attempted != nil && st.Attempted.Revision.Commit == second }); err != nil {
		t.Fatalf("waiting for the bad commit to be refused: %v", err)
	}

	con, err := console.New(console.Config{Control: srv.Control(), Pipeline: srv.Pipeline(), Store: srv.Store(), RepoWebURL: repoWeb})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(con)
	t.Cleanup(hs.Close)
	c := newClient(t, hs.URL)
	c.signIn(adminKey)
	_, _, page := c.do("GET", "/admin/revisions", nil)
	for _, want := range []string{
		"<code>" + first[:12] + "</code>", "Alice Admin &lt;alice@example.com&gt;", "the basic tailnet</td>",
		"<code>" + second[:12] + "</code>", "an owner nobody declared",
		`<a href="https://git.example.com/net/blob/` + second + `/net/bad.hujson#L2" class="pos">bad.hujson:2:`,
		"group &#34;group:nope&#34; is not defined",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the revisions page lacks %s:\n%s", want, page)
		}
	}
	// The refused revision is also in the kept list of refused revisions,
	// which outlives the last attempt.
	_, refused, _ := strings.Cut(page, `<div id="refused">`)
	refused, _, _ = strings.Cut(refused, "<h2>Applied</h2>")
	for _, want := range []string{"<code>" + second[:12] + "</code>", "failed at", `/net/bad.hujson#L2" class="pos">bad.hujson:2:`} {
		if !strings.Contains(refused, want) {
			t.Errorf("the refused revisions lack %s:\n%s", want, refused)
		}
	}
}
