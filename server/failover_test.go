package server

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/gitsync"
	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/pipeline"
)

// gitRemotes is a working clone pushing to bare repositories served over
// smart HTTP by real git (testkit.StartGitServer); requests for a blocked
// repository fail with 503, as a remote that is down does.
type gitRemotes struct {
	t       *testing.T
	root    string // the served bare repositories
	work    string
	server  *testkit.GitServer
	blocked atomic.Value // string: the repository refused, "" for none
}

func newGitRemotes(t *testing.T, repos ...string) *gitRemotes {
	t.Helper()
	g := &gitRemotes{t: t, root: t.TempDir(), work: t.TempDir()}
	g.blocked.Store("")
	for _, r := range repos {
		testkit.Git(t, g.root, "init", "--quiet", "--bare", r)
	}
	testkit.Git(t, g.work, "init", "--quiet")
	g.server = testkit.StartGitServer(t, testkit.GitServerConfig{Root: g.root, Wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if b := g.blocked.Load().(string); b != "" && strings.HasPrefix(r.URL.Path, "/"+b+"/") {
				http.Error(w, "blocked by the test", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	}})
	return g
}

// commit writes files (name → content) into the clone, commits them and
// returns the commit's SHA.
func (g *gitRemotes) commit(msg string, files map[string]string) string {
	g.t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(g.work, name), []byte(content), 0o644); err != nil {
			g.t.Fatal(err)
		}
	}
	testkit.Git(g.t, g.work, "add", "-A")
	testkit.Git(g.t, g.work, "commit", "--quiet", "-m", msg)
	return testkit.Git(g.t, g.work, "rev-parse", "HEAD")
}

// push pushes the clone's main branch to the bare repositories repos.
func (g *gitRemotes) push(repos ...string) {
	g.t.Helper()
	for _, r := range repos {
		testkit.Git(g.t, g.work, "push", "--quiet", "--force", filepath.Join(g.root, r), "HEAD:refs/heads/main")
	}
}

// startGitReplica starts a replica on dbURL following the repository at
// url (polled every 200 ms), with a short lease.
func startGitReplica(t *testing.T, ctx context.Context, dbURL, url string, logs *testkit.LogBuffer) *Server {
	t.Helper()
	srv, err := New(ctx, Config{
		StateDir: t.TempDir(), Database: dbURL, Repo: gitsync.Config{URL: url, Poll: 200 * time.Millisecond, MaxBackoff: time.Second},
		ReplicaHeartbeat: 200 * time.Millisecond, ReplicaLease: time.Second, MinRetry: 200 * time.Millisecond, MaxRetry: time.Second, Logf: logs.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// waitPipeline waits until srv's pipeline status satisfies cond.
func waitPipeline(t *testing.T, ctx context.Context, srv *Server, what string, cond func(pipeline.Status) bool) pipeline.Status {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := srv.Pipeline().Wait(wctx, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v; status: applied %+v, attempted %+v", what, err, st.Applied, st.Attempted)
	}
	return st
}

func appliedCommit(st pipeline.Status) string {
	if st.Applied == nil {
		return ""
	}
	return st.Applied.Commit
}

// TestNewApplierBehind: replica b follows a mirror that lags behind the
// remote replica a follows. A applies revisions 1 and 2; b, a follower,
// installs them from the database while its own source holds revision
// 1.5, the parent of 2, which a never saw as a head. When a stops, b
// becomes the applier, and: with its mirror down, it applies nothing (it
// cannot check the head); with the mirror back, it refuses 1.5 (the parent
// of an applied revision) and goes on serving 2; with the mirror forced
// back to revision 1, it refuses 1 (recorded before 2); once the mirror has
// revision 3, b applies it, once. Neither 1.5 nor 1 is applied after 2.
func TestNewApplierBehind(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dbURL := testkit.SharedPostgres(t).NewDatabase(t)
	g := newGitRemotes(t, "origin.git", "mirror.git")
	configDir(t, g.work, keyA)
	rev1 := g.commit("revision 1", nil)
	g.push("origin.git", "mirror.git")

	var logsA, logsB testkit.LogBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replica a:\n%s\nreplica b:\n%s", logsA.String(), logsB.String())
		}
	})
	a := startGitReplica(t, ctx, dbURL, g.server.URL("origin.git"), &logsA)
	waitPipeline(t, ctx, a, "a to apply revision 1", func(st pipeline.Status) bool { return appliedCommit(st) == rev1 })
	b := startGitReplica(t, ctx, dbURL, g.server.URL("mirror.git"), &logsB)
	waitPipeline(t, ctx, b, "b to install revision 1", func(st pipeline.Status) bool { return appliedCommit(st) == rev1 })

	// Revision 1.5 reaches the mirror only; revision 2, on top of it, the
	// remote, where a applies it (and never sees 1.5 as a head).
	rev15 := g.commit("revision 1.5", map[string]string{"bob.hujson": `{"users": {"bob2@example.com": {"name": "Bob", "role": "member"}}}`})
	g.push("mirror.git")
	rev2 := g.commit("revision 2", map[string]string{"carol.hujson": `{"users": {"carol@example.com": {"name": "Carol", "role": "member"}}}`})
	g.push("origin.git")
	waitPipeline(t, ctx, a, "a to apply revision 2", func(st pipeline.Status) bool { return appliedCommit(st) == rev2 })
	waitPipeline(t, ctx, b, "b to install revision 2 and fetch 1.5 from its mirror", func(st pipeline.Status) bool {
		return appliedCommit(st) == rev2 && st.Source.Head == rev15
	})

	g.blocked.Store("mirror.git")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	waitPipeline(t, ctx, b, "b, the applier now, to fail checking revision 1.5 against its mirror, which is down", func(st pipeline.Status) bool {
		return st.Attempted != nil && st.Attempted.Revision.Commit == rev15 && st.Attempted.Step == pipeline.StepFetch &&
			st.Attempted.Class == pipeline.ClassRetryLater
	})
	g.blocked.Store("")
	refused := func(rev, what string) {
		t.Helper()
		st := waitPipeline(t, ctx, b, "b to refuse "+what, func(st pipeline.Status) bool {
			return st.Attempted != nil && st.Attempted.Revision.Commit == rev && st.Attempted.Step == pipeline.StepApply
		})
		if st.Attempted.Class != pipeline.ClassNeedsNewCommit || len(st.Attempted.Problems) == 0 ||
			!strings.Contains(st.Attempted.Problems[0].Message, "newer revision") || appliedCommit(st) != rev2 {
			t.Errorf("b's attempt at %s: %+v, serving %s; want it refused (needs a new commit) and revision 2 served", what, st.Attempted, appliedCommit(st))
		}
	}
	refused(rev15, "revision 1.5, its mirror's head, the parent of revision 2")
	// The mirror goes back to revision 1, recorded before 2.
	testkit.Git(t, g.work, "push", "--quiet", "--force", filepath.Join(g.root, "mirror.git"), rev1+":refs/heads/main")
	refused(rev1, "revision 1, its mirror's head again, recorded before revision 2")
	if _, ok := b.Tailnet().Users["carol@example.com"]; !ok {
		t.Errorf("b serves a tailnet without carol, whom revision 2 added")
	}

	rev3 := g.commit("revision 3", map[string]string{"dave.hujson": `{"users": {"dave@example.com": {"name": "Dave", "role": "member"}}}`})
	g.push("origin.git", "mirror.git")
	waitPipeline(t, ctx, b, "b to apply revision 3", func(st pipeline.Status) bool { return appliedCommit(st) == rev3 })
	revs, err := b.Store().Revisions(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range revs {
		got = append(got, r.Commit)
	}
	if diff := cmp.Diff([]string{rev3, rev2, rev1}, got); diff != "" {
		t.Errorf("recorded revisions, newest first (-want +got):\n%s", diff)
	}
	if _, by, err := b.Store().AppliedBy(ctx); err != nil || by != b.Replica().ID() {
		t.Errorf("revision 3 applied by %q (%v); want b, %s", by, err, b.Replica().ID())
	}
}
