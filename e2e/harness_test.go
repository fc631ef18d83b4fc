package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/gitsync"
	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/reconcile"
	"github.com/tailplane/tailplane/schema"
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

// server is tailplane as `tailplane serve --repo` wires it: store, sync
// loop over a gitsync.Repo, coordination server and admin API on one
// listener. The DERP relay is shared across restarts.
type server struct {
	t     testing.TB
	URL   string
	Store *store.Store
	Ctrl  *control.Server
	Src   *gitsync.Repo
	Loop  *reconcile.Loop
	hs    *http.Server
	once  sync.Once
}

// serverOpts configure startServer.
type serverOpts struct {
	stateDir, repoURL, addr string
	derp                    *control.DERP
	webhookSecret           string
	verifyKeyring           string
}

func startServer(t testing.TB, o serverOpts) *server {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, o.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := reconcile.LoadApplied(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	nk, err := control.LoadOrCreateNoiseKey(o.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	addr := o.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctrl, err := control.New(ctx, control.Config{Store: st, NoiseKey: nk, Tailnet: applied, DERPMap: o.derp.Map, DERP: o.derp, ServerURL: url, Logf: prefixLogf(t, "control")})
	if err != nil {
		t.Fatal(err)
	}
	src, err := gitsync.NewRepo(ctx, gitsync.Config{
		URL: o.repoURL, Poll: time.Hour, MaxBackoff: time.Hour, // only the webhook (Sync) makes it look
		CacheDir: filepath.Join(o.stateDir, "git"), VerifyKeyring: o.verifyKeyring, Logf: prefixLogf(t, "gitsync"),
	})
	if err != nil {
		t.Fatal(err)
	}
	loop, err := reconcile.NewLoop(ctx, reconcile.LoopConfig{
		Store: st, Source: src, Publish: func(ctx context.Context, t *schema.Tailnet) error {
			// As serve does: in effect, then delivered to every live session.
			if err := ctrl.SetConfig(ctx, t); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			ctrl.WaitPropagated(ctx)
			return nil
		},
		Check:      ctrl.Check, // as serve does: the store never gets what the server refuses
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logf: prefixLogf(t, "loop"),
	})
	if err != nil {
		t.Fatal(err)
	}
	api := admin.Handler(admin.Config{Loop: loop, Store: st, Nodes: ctrl.NodeCounts, WebhookSecret: []byte(o.webhookSecret)})
	mux := http.NewServeMux()
	mux.Handle("/api/", api)
	mux.Handle("/metrics", api)
	mux.Handle("/", ctrl.Handler())
	s := &server{t: t, URL: url, Store: st, Ctrl: ctrl, Src: src, Loop: loop, hs: &http.Server{Handler: mux}}
	go s.hs.Serve(ln)
	t.Cleanup(s.stop)
	return s
}

// stop shuts the server down as a crash would leave it: nothing is
// flushed beyond what SQLite committed.
func (s *server) stop() {
	s.once.Do(func() {
		s.Loop.Close()
		s.Src.Close()
		s.Ctrl.Close()
		s.hs.Close()
		s.Store.Close()
	})
}

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

// waitFor polls cond until it reports true, failing the test at the deadline.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitApplied syncs and waits until the server serves commit.
func (s *server) waitApplied(t *testing.T, commit string) reconcile.LoopStatus {
	t.Helper()
	var st reconcile.LoopStatus
	waitFor(t, "commit "+commit+" to be applied", func() (bool, string) {
		s.Loop.Sync()
		st = s.Loop.Status()
		return st.Applied != nil && st.Applied.Commit == commit && st.Attempted != nil && st.Attempted.OK, describe(st)
	})
	return st
}

// waitRefused syncs and waits until commit was attempted and refused.
func (s *server) waitRefused(t *testing.T, commit string) reconcile.LoopStatus {
	t.Helper()
	var st reconcile.LoopStatus
	waitFor(t, "commit "+commit+" to be refused", func() (bool, string) {
		s.Loop.Sync()
		st = s.Loop.Status()
		return st.Attempted != nil && st.Attempted.Revision.Commit == commit && !st.Attempted.OK, describe(st)
	})
	return st
}

func describe(st reconcile.LoopStatus) string {
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
