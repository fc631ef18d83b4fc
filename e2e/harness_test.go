package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/gitsync"
	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/pipeline"
	"github.com/tailplane/tailplane/schema"
	tailplane "github.com/tailplane/tailplane/server"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tsnet"
)

// waitTimeout bounds every wait for something to happen; it is a deadline
// for a hung test, never an expected duration.
const waitTimeout = 90 * time.Second

// remote is a bare repository (the remote tailplane follows) and a working
// clone the test commits in and pushes from, with the git CLI.
type remote struct {
	t    testing.TB
	root string // holds tailnet.git; git-http-backend's project root
	bare string
	work string
}

func newRemote(t testing.TB) *remote {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("these tests need the git CLI on PATH: %v", err)
	}
	r := &remote{t: t, root: t.TempDir(), work: t.TempDir()}
	r.bare = filepath.Join(r.root, "tailnet.git")
	testkit.Git(t, r.root, "init", "-q", "--bare", r.bare)
	testkit.Git(t, r.work, "init", "-q")
	testkit.Git(t, r.work, "remote", "add", "origin", r.bare)
	return r
}

func (r *remote) fileURL() string { return "file://" + filepath.ToSlash(r.bare) }

// commit replaces the working tree with files, commits, pushes (forcing,
// so a rewritten branch is pushed too) and returns the commit SHA.
func (r *remote) commit(msg string, files map[string]string) string {
	r.t.Helper()
	ents, err := os.ReadDir(r.work)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != ".git" {
			os.RemoveAll(filepath.Join(r.work, e.Name()))
		}
	}
	for name, data := range files {
		p := filepath.Join(r.work, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	testkit.Git(r.t, r.work, "add", "-A")
	testkit.Git(r.t, r.work, "commit", "-q", "--allow-empty", "-m", msg)
	testkit.Git(r.t, r.work, "push", "-q", "--force", "origin", "HEAD:refs/heads/main")
	return testkit.Git(r.t, r.work, "rev-parse", "HEAD")
}

// rewrite drops the head commit locally (git reset --hard HEAD~1), so the
// next commit's push is a force push that rewrites the remote's history.
func (r *remote) rewrite() { testkit.Git(r.t, r.work, "reset", "-q", "--hard", "HEAD~1") }

// server is tailplane as `tailplane serve --repo` runs it, built by
// server.New: store, sync pipeline over a gitsync.Repo, coordination
// server, admin API and embedded DERP relay.
type server struct {
	t     testing.TB
	srv   *tailplane.Server
	URL   string
	Store *store.Store
	Ctrl  *control.Server
	Loop  servedLoop
}

// servedLoop is the server's sync pipeline, with the tailnet it serves.
type servedLoop struct {
	*pipeline.Pipeline
	srv *tailplane.Server
}

// Applied returns the tailnet the coordination server serves.
func (l servedLoop) Applied() *schema.Tailnet { return l.srv.Tailnet() }

// serverOpts configure startServer.
type serverOpts struct {
	stateDir, repoURL, addr string
	// derpListen and stunListen are the relay's addresses; empty: random
	// ports. A restart passes the old ones (relayAddrs), so the DERP map
	// stays the same, as with `serve --derp-listen --stun-listen`.
	derpListen, stunListen string
	webhookSecret          string
	verifyKeyring          string
}

func startServer(t testing.TB, o serverOpts) *server {
	t.Helper()
	srv, err := tailplane.New(context.Background(), tailplane.Config{
		StateDir: o.stateDir,
		Repo: gitsync.Config{
			URL: o.repoURL, Poll: time.Hour, MaxBackoff: time.Hour, // only the webhook (Sync) makes it look
			VerifyKeyring: o.verifyKeyring, Logf: prefixLogf(t, "gitsync"),
		},
		Listen: o.addr, DERPListen: o.derpListen, STUNListen: o.stunListen,
		WebhookSecret: []byte(o.webhookSecret),
		MinRetry:      50 * time.Millisecond, MaxRetry: 200 * time.Millisecond,
		Logf: prefixLogf(t, "server"),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, srv: srv, URL: srv.URL(), Store: srv.Store(), Ctrl: srv.Control(), Loop: servedLoop{srv.Pipeline(), srv}}
	t.Cleanup(s.stop)
	return s
}

// relayAddrs are the TCP address of the embedded DERP relay and the UDP
// address of its STUN server.
func (s *server) relayAddrs() (derp, stun string) {
	for _, r := range s.srv.DERP().Map.Regions {
		for _, n := range r.Nodes {
			return fmt.Sprintf("%s:%d", n.HostName, n.DERPPort), fmt.Sprintf("%s:%d", n.HostName, n.STUNPort)
		}
	}
	s.t.Fatal("the embedded DERP map has no node")
	return "", ""
}

// stop shuts the server down (server.Close); nothing is flushed beyond
// what SQLite committed, as after a crash.
func (s *server) stop() { s.srv.Close() }

// quietLogs drops server logs in benchmarks, where they would drown the results.
func quietLogs(t testing.TB) bool {
	_, ok := t.(*testing.B)
	return ok
}

var logMu sync.Mutex // serializes test logging from many goroutines after a test ended

func prefixLogf(t testing.TB, prefix string) func(string, ...any) {
	if quietLogs(t) {
		return func(string, ...any) {}
	}
	return func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		defer func() { recover() }() // logging after the test ended panics
		t.Logf("%s: %s", prefix, fmt.Sprintf(format, args...))
	}
}

// waitFor is testkit.WaitFor bounded by the e2e tests' deadline.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	testkit.WaitFor(t, ctx, what, cond)
}

// waitStatus waits until the server's pipeline status satisfies cond,
// without polling (pipeline.Wait), failing the test at the deadline.
func (s *server) waitStatus(t testing.TB, what string, cond func(pipeline.Status) bool) pipeline.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	st, err := s.Loop.Wait(ctx, cond)
	if err != nil {
		t.Fatalf("timed out waiting for %s; last state: %s", what, describe(st))
	}
	return st
}

// waitApplied syncs and waits until the server serves commit.
func (s *server) waitApplied(t testing.TB, commit string) pipeline.Status {
	t.Helper()
	s.Loop.Sync()
	return s.waitStatus(t, "commit "+commit+" to be applied", func(st pipeline.Status) bool {
		return st.Applied != nil && st.Applied.Commit == commit && st.Attempted != nil && st.Attempted.OK
	})
}

// waitRefused syncs and waits until commit was attempted and refused.
func (s *server) waitRefused(t testing.TB, commit string) pipeline.Status {
	t.Helper()
	s.Loop.Sync()
	return s.waitStatus(t, "commit "+commit+" to be refused", func(st pipeline.Status) bool {
		return st.Attempted != nil && st.Attempted.Revision.Commit == commit && !st.Attempted.OK
	})
}

func describe(st pipeline.Status) string {
	s := fmt.Sprintf("serving=%v failures=%d source=%s err=%v", st.Serving, st.Failures, st.Source.Head, st.Source.Err)
	if st.Applied != nil {
		s += " applied=" + st.Applied.Commit
	}
	if a := st.Attempted; a != nil {
		s += fmt.Sprintf(" attempted=%s ok=%v step=%s problems=%v", a.Revision.Commit, a.OK, a.Step, a.Problems)
	}
	return s
}

// node is a tsnet node of the test tailnet.
type node struct {
	*tsnet.Server
}

// dial tries one TCP connection to addr through the tailnet and reads the
// greeting; a short timeout, since a denied SYN is dropped silently.
func (n *node) dial(ctx context.Context, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := n.Dial(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	k, err := c.Read(buf)
	if k == 0 && err != nil {
		return "", err
	}
	return string(buf[:k]), nil
}

// serveGreeting makes n greet every TCP connection on port with msg.
func (n *node) serveGreeting(t *testing.T, port int, msg string) {
	ln, err := n.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	testkit.Greet(t, ln, msg)
}
