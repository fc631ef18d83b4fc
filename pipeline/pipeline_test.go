package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"tailscale.com/types/key"

	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/gitsync"
	"github.com/tailplane/tailplane/reconcile"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

// chanSource is a gitsync.Source fed by the test.
type chanSource struct {
	revs     chan gitsync.Revision
	triggers chan struct{}

	mu      sync.Mutex    // guards the fields below
	err     error         // reported in Status
	changed chan struct{} // closed and replaced by setErr
}

func newChanSource() *chanSource {
	return &chanSource{revs: make(chan gitsync.Revision), triggers: make(chan struct{}, 1), changed: make(chan struct{})}
}

// setErr sets the error Status reports, as a failed check would.
func (s *chanSource) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *chanSource) Revisions() <-chan gitsync.Revision { return s.revs }
func (s *chanSource) Status() gitsync.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return gitsync.Status{Source: "test", Err: s.err}
}
func (s *chanSource) Close() error { return nil }

func (s *chanSource) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}
func (s *chanSource) Trigger() {
	select {
	case s.triggers <- struct{}{}:
	default:
	}
}

// basicFiles returns the files of examples/basic, which the tests edit.
func basicFiles(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	dir := filepath.Join("..", "examples", "basic")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

func revision(id string, files map[string]string) gitsync.Revision {
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return gitsync.Revision{ID: id, Author: "Alice <alice@example.com>", Message: "change " + id, CommittedAt: time.Unix(1700000000, 0).UTC(), FS: fsys}
}

// loopHarness runs a Pipeline over a chanSource, a real SQLite store and
// a real coordination server, recording what it publishes.
type loopHarness struct {
	t     *testing.T
	src   *chanSource
	st    *store.Store
	loop  servedPipeline
	mu    sync.Mutex
	pub   []*schema.Tailnet
	pubFn func() error // runs before Install; an error fails it. Nil: succeed
	// checkFn runs before Prepare; an error refuses the config. Nil:
	// only the server's own preparation.
	checkFn func(*schema.Tailnet) error
	logs    []string // every line the pipeline logged
	// What the server was asked to prepare, test and install, in order.
	prepared, tested, installed []*control.Prepared
}

// servedPipeline is the pipeline under test and the server it installs into.
type servedPipeline struct {
	*Pipeline
	ctrl *control.Server
}

// Applied returns the tailnet the server serves.
func (s servedPipeline) Applied() *schema.Tailnet { return s.ctrl.Tailnet() }

// Close stops the pipeline, then the server.
func (s servedPipeline) Close() error {
	s.Pipeline.Close()
	return s.ctrl.Close()
}

// harnessServer is the coordination server as the harness lets tests
// refuse or fail its steps.
type harnessServer struct {
	*control.Server
	h *loopHarness
}

func (s harnessServer) Prepare(tn *schema.Tailnet) (*control.Prepared, error) {
	s.h.mu.Lock()
	check := s.h.checkFn
	s.h.mu.Unlock()
	if check != nil {
		if err := check(tn); err != nil {
			return nil, err
		}
	}
	p, err := s.Server.Prepare(tn)
	if err == nil {
		s.h.mu.Lock()
		s.h.prepared = append(s.h.prepared, p)
		s.h.mu.Unlock()
	}
	return p, err
}

func (s harnessServer) Test(ctx context.Context, p *control.Prepared) (schema.Diagnostics, error) {
	s.h.mu.Lock()
	s.h.tested = append(s.h.tested, p)
	s.h.mu.Unlock()
	return s.Server.Test(ctx, p)
}

func (s harnessServer) Install(ctx context.Context, p *control.Prepared) error {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if s.h.pubFn != nil {
		if err := s.h.pubFn(); err != nil {
			return err
		}
	}
	if err := s.Server.Install(ctx, p); err != nil {
		return err
	}
	s.h.pub = append(s.h.pub, p.Tailnet())
	s.h.installed = append(s.h.installed, p)
	return nil
}

// logged returns the lines the loop logged so far.
func (h *loopHarness) logged() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.logs)
}

func newLoopHarness(t *testing.T, dir string) *loopHarness {
	return newLoopHarnessBackoff(t, dir, 10*time.Millisecond)
}

func newLoopHarnessBackoff(t *testing.T, dir string, backoff time.Duration) *loopHarness {
	t.Helper()
	ctx := context.Background()
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	h := &loopHarness{t: t, src: newChanSource(), st: st}
	applied, err := reconcile.LoadApplied(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := control.New(ctx, control.Config{Store: st, NoiseKey: key.NewMachine(), Tailnet: applied, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := New(ctx, Config{
		Store: st, Source: h.src, Server: harnessServer{ctrl, h}, MinBackoff: backoff, MaxBackoff: 4 * backoff,
		Logf: func(format string, args ...any) {
			t.Logf(format, args...)
			h.mu.Lock()
			defer h.mu.Unlock()
			h.logs = append(h.logs, fmt.Sprintf(format, args...))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.loop = servedPipeline{pl, ctrl}
	t.Cleanup(func() {
		h.loop.Close()
		st.Close()
	})
	return h
}

func (h *loopHarness) send(rev gitsync.Revision) {
	h.t.Helper()
	select {
	case h.src.revs <- rev:
	case <-time.After(10 * time.Second):
		h.t.Fatalf("the loop did not take revision %s", rev.ID)
	}
}

// waitAttempt waits until the loop has attempted commit and returns the status.
func (h *loopHarness) waitAttempt(commit string, cond func(Status) bool) Status {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.loop.Wait(ctx, func(st Status) bool {
		return st.Attempted != nil && st.Attempted.Revision.Commit == commit && (cond == nil || cond(st))
	})
	if err != nil {
		h.t.Fatalf("timed out waiting for an attempt of %s; status %+v attempted %+v", commit, st, st.Attempted)
	}
	return st
}

func (h *loopHarness) published() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.pub)
}

func (h *loopHarness) appliedCommit() string {
	h.t.Helper()
	rev, ok, err := h.st.LatestRevision(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	if !ok {
		return ""
	}
	return rev.Commit
}

func TestLoopAppliesAndRefuses(t *testing.T) {
	h := newLoopHarness(t, "")
	if st := h.loop.Status(); st.Serving || st.Applied != nil {
		t.Fatalf("fresh loop status %+v, want nothing served", st)
	}
	good := basicFiles(t)
	h.send(revision("c1", good))
	st := h.waitAttempt("c1", nil)
	if !st.Attempted.OK || !st.Serving || st.Applied == nil || st.Applied.Commit != "c1" {
		t.Fatalf("after a good commit: serving=%v applied=%+v attempted=%+v", st.Serving, st.Applied, st.Attempted)
	}
	if h.published() != 1 || h.loop.Applied().Settings.Name != "Example" {
		t.Fatalf("published %d configs, applied name %q", h.published(), h.loop.Applied().Settings.Name)
	}

	edit := func(name, old, new string) map[string]string {
		files := map[string]string{}
		for k, v := range good {
			files[k] = v
		}
		if !strings.Contains(files[name], old) {
			t.Fatalf("%s does not contain %q", name, old)
		}
		files[name] = strings.Replace(files[name], old, new, 1)
		return files
	}
	for _, tc := range []struct {
		name     string
		files    map[string]string
		step     string
		wantPos  string // prefix of the first problem's position
		wantText string
	}{
		{"syntax-error", edit("tailnet.hujson", `"magicDNS": true,`, `"magicDNS": true,,`), StepLoad, "tailnet.hujson:", ""},
		{"schema-error", edit("tailnet.hujson", `"role": "member"`, `"role": "superhero"`), StepValidate, "tailnet.hujson:", "superhero"},
		{"policy-error", edit("policy.hujson", `"dst": ["*:*"]`, `"dst": ["nosuchhost:*"]`), StepCompile, "policy.hujson:", "nosuchhost"},
		{"failing-test", edit("policy.hujson", `"deny": ["tag:server:5432"]`, `"deny": ["tag:server:8080"]`), StepTest, "policy.hujson:", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "bad-" + tc.name
			h.send(revision(id, tc.files))
			st := h.waitAttempt(id, nil)
			a := st.Attempted
			if a.OK || a.Step != tc.step || a.Class != "needs a new commit" {
				t.Fatalf("attempt = %+v, want failure at %s needing a new commit", a, tc.step)
			}
			if len(a.Problems) == 0 || !strings.HasPrefix(a.Problems[0].Pos, tc.wantPos) {
				t.Fatalf("problems %+v, want positions in %s", a.Problems, tc.wantPos)
			}
			if !strings.Contains(a.Problems[0].String(), tc.wantText) {
				t.Errorf("problem %q does not mention %q", a.Problems[0], tc.wantText)
			}
			if got := h.appliedCommit(); got != "c1" {
				t.Errorf("applied commit %q after a bad one, want c1", got)
			}
			if st.Applied == nil || st.Applied.Commit != "c1" || st.Failures != 0 || !st.NextRetry.IsZero() {
				t.Errorf("status after a bad commit: applied %+v failures %d next retry %v", st.Applied, st.Failures, st.NextRetry)
			}
			if h.published() != 1 {
				t.Errorf("a bad commit was published")
			}
		})
	}

	// Removing bob applies; the removal is recorded.
	c2 := edit("tailnet.hujson", `"bob@example.com":   {"name": "Bob", "role": "member"},`, "")
	c2["policy.hujson"] = strings.Replace(c2["policy.hujson"], `"src": "bob@example.com"`, `"src": "alice@example.com"`, 1)
	h.send(revision("c2", c2))
	st = h.waitAttempt("c2", nil)
	if !st.Attempted.OK {
		t.Fatalf("c2 failed: %+v", st.Attempted)
	}
	if _, ok := h.loop.Applied().Users["bob@example.com"]; ok {
		t.Error("bob is still in the applied tailnet")
	}
	revs, err := h.st.Revisions(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range revs {
		ids = append(ids, r.Commit)
	}
	if diff := cmp.Diff([]string{"c2", "c1"}, ids); diff != "" {
		t.Errorf("revision history (-want +got):\n%s", diff)
	}
	// Every refused revision is kept, newest first, with its errors.
	refused, err := h.loop.Refused(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var refusedIDs []string
	for _, a := range refused {
		refusedIDs = append(refusedIDs, a.Revision.Commit)
		if a.OK || len(a.Problems) == 0 || a.Step == "" {
			t.Errorf("refused revision %s recorded as %+v, want its step and problems", a.Revision.Commit, a)
		}
	}
	if diff := cmp.Diff([]string{"bad-failing-test", "bad-policy-error", "bad-schema-error", "bad-syntax-error"}, refusedIDs); diff != "" {
		t.Errorf("refused revisions (-want +got):\n%s", diff)
	}
	if m := h.loop.Status().Metrics; m.Applied != 2 || m.Failures != 4 || m.Attempts != 6 {
		t.Errorf("metrics %+v, want 6 attempts, 4 failures, 2 applied", m)
	}
}

// TestLoopCheckRunsBeforeApply checks that a config the coordination
// server would refuse (Server.Prepare) never reaches the store: the
// attempt fails at the check step, waits for a new commit, and the next
// accepted commit applies.
func TestLoopCheckRunsBeforeApply(t *testing.T) {
	h := newLoopHarness(t, "")
	good := basicFiles(t)
	h.send(revision("c1", good))
	if st := h.waitAttempt("c1", nil); !st.Attempted.OK {
		t.Fatalf("c1 failed: %+v", st.Attempted)
	}
	renamed := map[string]string{}
	for k, v := range good {
		renamed[k] = v
	}
	renamed["tailnet.hujson"] = strings.Replace(good["tailnet.hujson"], `"name": "Example"`, `"name": "Renamed"`, 1)
	if renamed["tailnet.hujson"] == good["tailnet.hujson"] {
		t.Fatal("examples/basic/tailnet.hujson has no \"name\": \"Example\" to edit")
	}
	h.mu.Lock()
	h.checkFn = func(tn *schema.Tailnet) error {
		if tn.Settings.Name == "Renamed" {
			return errors.New("the server refuses this name")
		}
		return nil
	}
	h.mu.Unlock()

	h.send(revision("c2", renamed))
	st := h.waitAttempt("c2", nil)
	if a := st.Attempted; a.OK || a.Step != StepCheck || a.Class != ClassNeedsNewCommit ||
		len(a.Problems) == 0 || !strings.Contains(a.Problems[0].Message, "refuses this name") {
		t.Fatalf("attempt = %+v, want a failure at the check step needing a new commit", a)
	}
	if got := h.appliedCommit(); got != "c1" {
		t.Errorf("applied commit %q after a refused one, want c1", got)
	}
	applied, err := reconcile.LoadApplied(context.Background(), h.st)
	if err != nil {
		t.Fatal(err)
	}
	if applied.Settings.Name != "Example" || h.loop.Applied().Settings.Name != "Example" || h.published() != 1 {
		t.Errorf("after a refused check: stored name %q, loop name %q, %d published; want Example, Example, 1",
			applied.Settings.Name, h.loop.Applied().Settings.Name, h.published())
	}

	h.mu.Lock()
	h.checkFn = nil
	h.mu.Unlock()
	h.send(revision("c3", renamed))
	if st := h.waitAttempt("c3", nil); !st.Attempted.OK || h.loop.Applied().Settings.Name != "Renamed" {
		t.Fatalf("c3 = %+v, applied name %q; want it applied", st.Attempted, h.loop.Applied().Settings.Name)
	}
}

// TestLoopRetriesLater makes publishing fail twice, then crashes Apply
// halfway once: each time nothing changes, the loop backs off and retries
// the same revision until it is served.
func TestLoopRetriesLater(t *testing.T) {
	h := newLoopHarness(t, "")
	files := basicFiles(t)

	// Publishing fails twice; the second try waits until the test has seen
	// the first failure, which a quick retry would otherwise replace.
	calls := 0
	seen := make(chan struct{})
	h.mu.Lock()
	h.pubFn = func() error {
		calls++
		switch calls {
		case 1:
			return errors.New("server busy")
		case 2:
			<-seen
			return errors.New("server busy")
		}
		return nil
	}
	h.mu.Unlock()
	h.send(revision("c1", files))
	st := h.waitAttempt("c1", func(st Status) bool { return !st.Attempted.OK })
	if st.Attempted.Step != StepPublish || st.Attempted.Class != "retry later" || st.NextRetry.IsZero() {
		t.Errorf("after a failed publish: attempt %+v, next retry %v", st.Attempted, st.NextRetry)
	}
	close(seen)
	st = h.waitAttempt("c1", func(st Status) bool { return st.Attempted.OK })
	if st.Failures != 0 || !st.NextRetry.IsZero() || h.published() != 1 || st.Metrics.Failures != 2 {
		t.Errorf("after recovery: failures %d, next retry %v, published %d, metrics %+v; want 0, none, 1, 2 failures",
			st.Failures, st.NextRetry, h.published(), st.Metrics)
	}

	// A crash before the revision is recorded rolls everything back. The
	// retry waits at the same step until the test has seen the crash.
	crashes := 0
	crashSeen := make(chan struct{})
	reconcile.SetApplyHook(func(step string) error {
		if step != "record revision" {
			return nil
		}
		crashes++
		if crashes == 1 {
			return errors.New("injected crash")
		}
		if crashes == 2 {
			<-crashSeen
		}
		return nil
	})
	t.Cleanup(func() { reconcile.SetApplyHook(nil) })
	files["extra.hujson"] = `{"users": {"carol@example.com": {"name": "Carol"}}}`
	h.send(revision("c2", files))
	st = h.waitAttempt("c2", func(st Status) bool { return !st.Attempted.OK })
	if st.Attempted.Step != StepApply || st.Attempted.Class != "retry later" {
		t.Errorf("after a crash: attempt %+v", st.Attempted)
	}
	if got := h.appliedCommit(); got != "c1" {
		t.Errorf("applied commit %q after the crash, want c1", got)
	}
	close(crashSeen)
	st = h.waitAttempt("c2", func(st Status) bool { return st.Attempted.OK })
	if st.Applied.Commit != "c2" {
		t.Errorf("applied %s after the retry, want c2", st.Applied.Commit)
	}
	if _, ok := h.loop.Applied().Users["carol@example.com"]; !ok {
		t.Error("carol is missing from the applied tailnet")
	}
}

// TestLoopRestart serves the applied state of a previous run straight away
// and does not re-record or re-publish the same commit.
func TestLoopRestart(t *testing.T) {
	dir := t.TempDir()
	files := basicFiles(t)
	h := newLoopHarness(t, dir)
	h.send(revision("c1", files))
	h.waitAttempt("c1", nil)
	h.loop.Close()
	h.st.Close()

	h2 := newLoopHarness(t, dir)
	st := h2.loop.Status()
	if !st.Serving || st.Applied == nil || st.Applied.Commit != "c1" {
		t.Fatalf("restarted status %+v, want c1 served", st)
	}
	if h2.loop.Applied().Settings.Name != "Example" {
		t.Errorf("restarted applied tailnet %+v", h2.loop.Applied().Settings)
	}
	h2.send(revision("c1", files))
	st = h2.waitAttempt("c1", nil)
	if !st.Attempted.OK || h2.published() != 0 {
		t.Errorf("re-reading the served commit: attempt %+v, published %d times", st.Attempted, h2.published())
	}
	revs, err := h2.st.Revisions(context.Background(), 0)
	if err != nil || len(revs) != 1 {
		t.Errorf("revisions after restart: %v %v, want one", revs, err)
	}
}

func TestLoopBackoff(t *testing.T) {
	l := &Pipeline{cfg: Config{MinBackoff: time.Second, MaxBackoff: 10 * time.Second}}
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second}, {5, 10 * time.Second}, {100, 10 * time.Second}} {
		if got := l.backoff(tc.failures); got != tc.want {
			t.Errorf("backoff(%d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
}

// TestLoopSyncRetriesAtOnce: with a backoff far longer than the test, only
// Sync (a webhook, POST /api/v1/sync) can retry a failed revision; it also
// asks the source to look.
func TestLoopSyncRetriesAtOnce(t *testing.T) {
	h := newLoopHarnessBackoff(t, "", time.Hour)
	fail := true
	h.mu.Lock()
	h.pubFn = func() error {
		if fail {
			fail = false
			return errors.New("server busy")
		}
		return nil
	}
	h.mu.Unlock()
	h.send(revision("c1", basicFiles(t)))
	st := h.waitAttempt("c1", nil)
	if st.Attempted.OK || st.NextRetry.Before(time.Now().Add(30*time.Minute)) {
		t.Fatalf("first attempt %+v, next retry %v; want a failure retried in an hour", st.Attempted, st.NextRetry)
	}
	h.loop.Sync()
	h.waitAttempt("c1", func(st Status) bool { return st.Attempted.OK })
	select {
	case <-h.src.triggers:
	default:
		t.Error("Sync did not trigger the source")
	}
}

// TestLoopShowsRefusedFetch: a commit the source refuses (say, unsigned)
// is shown as the attempted revision, failed at fetch.
func TestLoopShowsRefusedFetch(t *testing.T) {
	h := newLoopHarness(t, "")
	h.send(revision("c1", basicFiles(t)))
	h.waitAttempt("c1", nil)
	h.src.setErr(&gitsync.SyncError{Kind: gitsync.ErrNeedsCommit, Commit: "c2", Err: errors.New("commit is not signed")})
	st := h.loop.Status()
	want := &Attempt{
		Revision: Revision{Commit: "c2"}, Step: StepFetch, Class: "needs a new commit",
		Problems: []Problem{{Message: "commit is not signed"}},
	}
	if diff := cmp.Diff(want, st.Attempted); diff != "" {
		t.Errorf("attempted (-want +got):\n%s", diff)
	}
	if st.Applied.Commit != "c1" {
		t.Errorf("applied %s, want c1", st.Applied.Commit)
	}
}

// TestLoopShowsApplying: while a revision is being published, the status
// names it.
func TestLoopShowsApplying(t *testing.T) {
	h := newLoopHarness(t, "")
	entered, release := make(chan struct{}), make(chan struct{})
	h.mu.Lock()
	h.pubFn = func() error {
		close(entered)
		<-release
		return nil
	}
	h.mu.Unlock()
	h.send(revision("c1", basicFiles(t)))
	<-entered
	if st := h.loop.Status(); st.Applying == nil || st.Applying.Commit != "c1" || st.Attempted != nil {
		t.Errorf("while publishing: applying %+v, attempted %+v", st.Applying, st.Attempted)
	}
	close(release)
	if st := h.waitAttempt("c1", nil); st.Applying != nil || !st.Attempted.OK {
		t.Errorf("after publishing: applying %+v, attempted %+v", st.Applying, st.Attempted)
	}
}

// TestLoopLogsWhatIsServed: a refused revision's log line says what is
// served instead: nothing (and no registration succeeds) before the first
// apply, the last applied revision after it.
func TestLoopLogsWhatIsServed(t *testing.T) {
	h := newLoopHarness(t, "")
	good := basicFiles(t)
	bad := basicFiles(t)
	bad["broken.hujson"] = `{"users": {"bob@example.com": {"role": "superhero"}}}`
	const nothing = "nothing is applied yet, so no tailnet is served and every registration is refused until a revision applies"
	const last = "the last applied revision keeps serving"

	lineOf := func(commit string) string {
		t.Helper()
		for _, l := range h.logged() {
			if strings.HasPrefix(l, "reconcile: revision "+commit+" not applied") {
				return l
			}
		}
		t.Fatalf("no log line for refused revision %s in:\n%s", commit, strings.Join(h.logged(), "\n"))
		return ""
	}
	h.send(revision("c1", bad))
	h.waitAttempt("c1", nil)
	if l := lineOf("c1"); !strings.Contains(l, nothing) || strings.Contains(l, last) {
		t.Errorf("first revision refused, nothing applied; log line:\n%s\nwant it to say %q", l, nothing)
	}
	h.send(revision("c2", good))
	h.waitAttempt("c2", func(st Status) bool { return st.Attempted.OK })
	h.send(revision("c3", bad))
	h.waitAttempt("c3", nil)
	if l := lineOf("c3"); !strings.Contains(l, last) || strings.Contains(l, nothing) {
		t.Errorf("revision refused after c2 applied; log line:\n%s\nwant it to say %q", l, last)
	}
}

// TestWaitWakesOnSourceChange: Wait returns once a change of the source's
// status (here a commit it refused) makes the condition true, although
// the pipeline itself did nothing; and it gives up when its context ends.
func TestWaitWakesOnSourceChange(t *testing.T) {
	h := newLoopHarness(t, "")
	h.send(revision("c1", basicFiles(t)))
	h.waitAttempt("c1", nil)
	checked := make(chan struct{})
	var once sync.Once
	type result struct {
		st  Status
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := h.loop.Wait(ctx, func(st Status) bool {
			once.Do(func() { close(checked) })
			return st.Attempted != nil && st.Attempted.Revision.Commit == "c2"
		})
		done <- result{st, err}
	}()
	<-checked // Wait has seen the status without c2
	h.src.setErr(&gitsync.SyncError{Kind: gitsync.ErrNeedsCommit, Commit: "c2", Err: errors.New("commit is not signed")})
	r := <-done
	if r.err != nil || r.st.Attempted.Step != StepFetch {
		t.Fatalf("Wait = %+v, %v; want the refused c2, at fetch", r.st.Attempted, r.err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.loop.Wait(ctx, func(Status) bool { return false }); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with its context ended = %v, want context.Canceled", err)
	}
}

// TestLoopPreparesOnce: a revision is prepared (compiled) once, and the
// prepared value is what is tested, what the store records and what is
// installed.
func TestLoopPreparesOnce(t *testing.T) {
	h := newLoopHarness(t, "")
	h.send(revision("c1", basicFiles(t)))
	if st := h.waitAttempt("c1", nil); !st.Attempted.OK {
		t.Fatalf("c1 failed: %+v", st.Attempted)
	}
	h.mu.Lock()
	prepared, tested, installed := slices.Clone(h.prepared), slices.Clone(h.tested), slices.Clone(h.installed)
	h.mu.Unlock()
	if len(prepared) != 1 || len(tested) != 1 || len(installed) != 1 || tested[0] != prepared[0] || installed[0] != prepared[0] {
		t.Fatalf("prepared %v, tested %v, installed %v; want one Prepared, tested and installed", prepared, tested, installed)
	}
	if h.loop.Applied() != prepared[0].Tailnet() {
		t.Error("the server serves another tailnet than the prepared one")
	}
	stored, err := reconcile.LoadApplied(context.Background(), h.st)
	if err != nil {
		t.Fatal(err)
	}
	if p := reconcile.Diff(reconcile.Desired(stored), reconcile.Desired(prepared[0].Tailnet())); !p.Empty() {
		var b strings.Builder
		p.WriteText(&b)
		t.Errorf("the store holds another tailnet than the prepared one:\n%s", b.String())
	}
}
