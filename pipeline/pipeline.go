package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"sync"
	"time"

	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/gitsync"
	"github.com/tailplane/tailplane/reconcile"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

// The steps a revision goes through, in order. A StepError names the one
// that failed.
const (
	StepFetch    = "fetch"    // the source got the commit (reported by gitsync)
	StepLoad     = "load"     // schema.Load assembles the files
	StepValidate = "validate" // the document matches the schema
	StepCompile  = "compile"  // Server.Prepare compiles the policy; it uses nothing tailplane cannot serve
	StepCheck    = "check"    // the rest of Server.Prepare: the policy's derpMap merges into the server's
	StepTest     = "test"     // tests and sshTests pass against the server's nodes (Server.Test)
	StepApply    = "apply"    // the plan against SQLite, applied in one transaction
	StepPublish  = "publish"  // the coordination server serves it (Server.Install)
)

// Classes of a failed Attempt.
const (
	ClassNeedsNewCommit = "needs a new commit" // the config is at fault; wait for the next commit
	ClassRetryLater     = "retry later"        // transient; the same revision is retried with backoff
)

// StepError is a failure of one step of the pipeline for one revision.
// reconcile.NeedsNewCommit and reconcile.RetryLater see through it.
type StepError struct {
	Step   string // one of the Step constants
	Commit string // the revision's ID
	Err    error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("revision %s: %s: %v", shortCommit(e.Commit), e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Server is the coordination server revisions are prepared, tested and
// served by: a *control.Server.
type Server interface {
	// Prepare compiles and checks t; what it returns is tested, recorded
	// and installed. An error is the config's fault.
	Prepare(t *schema.Tailnet) (*control.Prepared, error)
	// Test runs the prepared policy's tests against the server's nodes and
	// returns the failures.
	Test(ctx context.Context, p *control.Prepared) (schema.Diagnostics, error)
	// Install serves p; it returns once p is in effect.
	Install(ctx context.Context, p *control.Prepared) error
	// WaitPropagated returns once every connected node was sent the
	// config last installed.
	WaitPropagated(ctx context.Context) error
}

// Config configures a Pipeline. Store, Source and Server are required.
type Config struct {
	// Store is the server's database; applied state and history live there.
	Store *store.Store
	// Source delivers revisions (a gitsync.Repo or gitsync.Dir). The
	// pipeline reads it but does not close it.
	Source gitsync.Source
	// Server prepares, tests and serves each revision. The pipeline
	// assumes it already serves the state applied in Store at start.
	Server Server
	// MinBackoff and MaxBackoff bound the exponential backoff of retry-later
	// failures. Zero: 1s and 5m.
	MinBackoff, MaxBackoff time.Duration
	// Logf logs each revision's outcome. Nil: log.Printf.
	Logf func(format string, args ...any)
	// Replica, when set, makes this one of several replicas sharing Store:
	// it applies revisions only while it is the applier (see Replica).
	// Nil: a single server, which applies every revision.
	Replica Replica
	// Served, when set, is the revision Server served at start: the
	// latest recorded one, read before the applied state Server was made
	// from (its Commit empty: none was recorded). Nil: New reads the
	// latest recorded revision, which Server must then serve. With
	// replicas, another one may record a revision between reading the
	// state and New: give Served, and New's follower installs that one.
	Served *Revision
	// ObservePropagation, when set, is given each applied revision's
	// propagation time (see Metrics.Propagation), e.g. for a histogram. It
	// runs on the pipeline's goroutine and must not block. Nil: none.
	ObservePropagation func(time.Duration)
}

// Pipeline takes each new revision from a Source to the nodes: load,
// validate, prepare (compile and check, once, by the Server), test, apply
// (diff and write to the store), publish (install on the Server). A
// revision that fails any step changes nothing: the last applied revision
// keeps being served. Create it with New; Close stops it.
type Pipeline struct {
	cfg    Config
	wake   chan struct{} // size 1: coalesces wake-ups (Sync)
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex    // guards the fields below
	changed   chan struct{} // closed and replaced when Status changes; see Wait
	appliedAt *Revision     // nil until something was applied
	published string        // ID of the revision last published
	attempt   *Attempt
	applying  *Revision // the revision being processed now; nil when idle
	nextRetry time.Time
	failures  int
	triggered time.Time // when Sync was last called; zero once consumed
	metrics   Metrics
}

// Revision is one applied config revision, as reconcile.Apply records it.
type Revision = reconcile.Revision

// Attempt is the outcome of the last revision the pipeline tried.
type Attempt struct {
	Revision Revision  `json:"revision"` // Commit, Author, Message, CommittedAt
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// OK is true when the revision is applied and served.
	OK bool `json:"ok"`
	// Step is the step that failed; empty when OK.
	Step string `json:"step,omitempty"`
	// Class is "needs a new commit" or "retry later"; empty when OK.
	Class string `json:"class,omitempty"`
	// Problems are the errors, one per diagnostic, with positions.
	Problems []Problem `json:"problems,omitempty"`
	// Summary is the applied plan's summary when OK.
	Summary string `json:"summary,omitempty"`
}

// Problem is one error of a failed attempt. Pos is "file:line:col" when
// the error comes from a diagnostic with a known position.
type Problem struct {
	Pos     string `json:"pos,omitempty"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

func (p Problem) String() string {
	s := p.Message
	if p.Path != "" {
		s = p.Path + ": " + s
	}
	if p.Pos != "" {
		s = p.Pos + ": " + s
	}
	if p.Hint != "" {
		s += " (hint: " + p.Hint + ")"
	}
	return s
}

// triggerWindow is how long after a Sync a received revision counts as
// caused by it, for the propagation metric: a webhook for another branch
// brings no revision, and must not inflate the next one's figure.
const triggerWindow = time.Minute

// Metrics are the pipeline's counters, for /metrics.
type Metrics struct {
	Attempts int64 // revisions tried (including retries)
	Failures int64 // attempts that failed
	Applied  int64 // attempts that succeeded
	// Propagation is the time from the trigger (Sync, e.g. a webhook) or,
	// without one, from receiving the revision, to Publish returning, for
	// the last applied revision. Zero until one was applied.
	Propagation time.Duration
}

// Status is a snapshot of the pipeline, for the admin API.
type Status struct {
	// Serving is true when an applied config is being served; false on a
	// first start before any revision applied.
	Serving bool `json:"serving"`
	// Applied is the last applied revision (from SQLite); nil before the first.
	Applied *Revision `json:"applied,omitempty"`
	// Attempted is the last revision tried; nil before the first.
	Attempted *Attempt `json:"attempted,omitempty"`
	// Applying is the revision being processed right now; nil when idle.
	Applying *Revision `json:"applying,omitempty"`
	// NextRetry is when a retry-later failure is tried again; zero if none is due.
	NextRetry time.Time `json:"nextRetry,omitzero"`
	// Failures counts consecutive retry-later failures.
	Failures int            `json:"failures"`
	Source   gitsync.Status `json:"-"`
	Metrics  Metrics        `json:"-"`
}

// New reads the last applied revision from cfg.Store and starts the
// pipeline. It stops when ctx is done or Close is called.
func New(ctx context.Context, cfg Config) (*Pipeline, error) {
	if cfg.Store == nil || cfg.Source == nil || cfg.Server == nil {
		return nil, errors.New("pipeline: Config needs Store, Source and Server")
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	var last Revision
	var ok bool
	if cfg.Served != nil {
		last, ok = *cfg.Served, cfg.Served.Commit != ""
	} else if r, found, err := cfg.Store.LatestRevision(ctx); err != nil {
		return nil, err
	} else {
		last, ok = r, found
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Pipeline{cfg: cfg, wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}), changed: make(chan struct{})}
	if ok {
		l.appliedAt = &last
		l.published = last.Commit
	}
	go l.run(ctx)
	return l, nil
}

// Close stops the pipeline and waits for it. It is safe to call more than once.
func (l *Pipeline) Close() error {
	l.cancel()
	<-l.done
	return nil
}

// Sync asks the source for the head now (as a push webhook does) and
// retries a failed revision at once; a replica that does not apply
// revisions asks the applier too (see Replica). It never blocks; calls
// coalesce.
func (l *Pipeline) Sync() {
	l.mu.Lock()
	if l.triggered.IsZero() {
		l.triggered = time.Now()
	}
	l.mu.Unlock()
	l.cfg.Source.Trigger()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	l.forwardSync()
}

// Status returns a snapshot of the pipeline and its source.
func (l *Pipeline) Status() Status {
	src := l.cfg.Source.Status()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Status{
		Serving:   l.appliedAt != nil,
		NextRetry: l.nextRetry,
		Failures:  l.failures,
		Source:    src,
		Metrics:   l.metrics,
	}
	if l.appliedAt != nil {
		r := *l.appliedAt
		st.Applied = &r
	}
	if l.attempt != nil {
		a := *l.attempt
		st.Attempted = &a
	}
	if l.applying != nil {
		r := *l.applying
		st.Applying = &r
	}
	// A commit the source refused (say, unsigned) never reaches the pipeline;
	// show it as the attempted revision, failed at fetch.
	var se *gitsync.SyncError
	if errors.As(src.Err, &se) && se.Kind == gitsync.ErrNeedsCommit && se.Commit != "" &&
		(st.Attempted == nil || st.Attempted.Revision.Commit != se.Commit) {
		st.Attempted = &Attempt{
			Revision: Revision{Commit: se.Commit},
			Started:  src.LastAttempt, Finished: src.LastAttempt,
			Step: StepFetch, Class: ClassNeedsNewCommit,
			Problems: []Problem{{Message: se.Err.Error()}},
		}
	}
	return st
}

// Wait returns the first Status, from now on, for which cond is true. It
// checks at once and again at every change of the pipeline's or its
// source's status, without polling. When ctx ends first it returns the
// last Status and ctx's error.
func (l *Pipeline) Wait(ctx context.Context, cond func(Status) bool) (Status, error) {
	for {
		// Take both channels before reading the status, so no change
		// between the read and the wait goes unnoticed.
		l.mu.Lock()
		changed := l.changed
		l.mu.Unlock()
		srcChanged := l.cfg.Source.Changed()
		st := l.Status()
		if cond(st) {
			return st, nil
		}
		select {
		case <-changed:
		case <-srcChanged:
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}

// changedLocked wakes the waiters of Wait; the caller changed a field
// Status reports.
func (l *Pipeline) changedLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// run is the pipeline's goroutine: it owns the pending revision and the timer.
func (l *Pipeline) run(ctx context.Context) {
	defer close(l.done)
	revs := l.cfg.Source.Revisions()
	retry := time.NewTimer(0)
	retry.Stop()
	defer retry.Stop()
	var pending *gitsync.Revision
	var received time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case rev, ok := <-revs:
			if !ok {
				revs = nil
				continue
			}
			pending, received = &rev, time.Now()
			l.setRetry(0, time.Time{})
		case <-retry.C:
		case <-l.wake:
		case <-l.replicaChanged():
		}
		if !l.applies() {
			retry.Stop()
			if delay, err := l.installRecorded(ctx); err != nil && ctx.Err() == nil {
				retry.Reset(delay)
			}
			continue // pending waits until this replica applies
		}
		if pending == nil {
			continue
		}
		retry.Stop()
		delay, err := l.process(ctx, *pending, received)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errHeadMoved) {
			pending = nil // the source brings the head (see checkHead)
			l.cfg.Source.Trigger()
			continue
		}
		if err == nil || reconcile.NeedsNewCommit(err) {
			pending = nil
			continue
		}
		retry.Reset(delay)
	}
}

func (l *Pipeline) setRetry(failures int, next time.Time) {
	l.mu.Lock()
	l.failures, l.nextRetry = failures, next
	l.changedLocked()
	l.mu.Unlock()
}

// backoff is MinBackoff doubled per failure after the first, capped.
func (l *Pipeline) backoff(failures int) time.Duration {
	d := l.cfg.MinBackoff
	for i := 1; i < failures && d < l.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, l.cfg.MaxBackoff)
}

// process takes rev through every step and records the attempt. After a
// retry-later failure, delay is when to try again.
func (l *Pipeline) process(ctx context.Context, rev gitsync.Revision, received time.Time) (delay time.Duration, err error) {
	a := &Attempt{
		Revision: Revision{Commit: rev.ID, Author: rev.Author, Message: rev.Message, CommittedAt: rev.CommittedAt},
		Started:  time.Now(),
	}
	l.mu.Lock()
	l.applying = &a.Revision
	l.changedLocked()
	l.mu.Unlock()
	var took stepTimes
	plan, err := l.steps(ctx, rev, &took)
	a.Finished = time.Now()
	var last *Revision
	if err == nil {
		r, ok, lerr := l.cfg.Store.LatestRevision(ctx)
		switch {
		case lerr != nil:
			l.cfg.Logf("reconcile: revision %s is applied, but the status may show the previous one: %v", shortCommit(rev.ID), lerr)
		case ok:
			last = &r
		}
	}
	aborted := err != nil && (ctx.Err() != nil || errors.Is(err, errHeadMoved))
	if err != nil && !aborted {
		var se *StepError
		if errors.As(err, &se) {
			a.Step = se.Step
		}
		a.Class = ClassNeedsNewCommit
		if !reconcile.NeedsNewCommit(err) {
			a.Class = ClassRetryLater
		}
		a.Problems = problems(err)
		// The refused list gets the attempt before the status shows it,
		// and the store is written without the mutex. Only the pipeline's
		// loop (process, installRecorded) sets l.attempt, so prev is still
		// the previous attempt below.
		l.mu.Lock()
		prev := l.attempt
		l.mu.Unlock()
		if prev == nil || prev.OK || prev.Revision.Commit != a.Revision.Commit || prev.Step != a.Step {
			l.recordRefused(ctx, a) // retries failing the same way are not recorded again
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.changedLocked()
	l.applying = nil
	if aborted {
		return 0, err
	}
	l.metrics.Attempts++
	l.attempt = a
	prevFailures := l.failures
	l.failures, l.nextRetry = 0, time.Time{}
	if err != nil {
		l.metrics.Failures++
		if a.Class == ClassRetryLater {
			l.failures = prevFailures + 1
			delay = l.backoff(l.failures)
			l.nextRetry = a.Finished.Add(delay)
		}
		l.cfg.Logf("reconcile: revision %s not applied (%s; %s):\n%s", shortCommit(rev.ID), a.Class, l.stillServedLocked(), problemLines(a.Problems))
		return delay, err
	}
	a.OK = true
	a.Summary = plan.Summary()
	l.metrics.Applied++
	start := received
	if tr := l.triggered; !tr.IsZero() && tr.Before(received) && received.Sub(tr) < triggerWindow {
		start = tr
	}
	l.triggered = time.Time{}
	l.metrics.Propagation = a.Finished.Sub(start)
	if l.cfg.ObservePropagation != nil {
		l.cfg.ObservePropagation(l.metrics.Propagation)
	}
	l.published = rev.ID
	if last != nil {
		l.appliedAt = last
	}
	l.cfg.Logf("reconcile: revision %s applied and served (%s): %s", shortCommit(rev.ID), took, a.Summary)
	return 0, nil
}

// stillServedLocked says what is served after a revision failed: the last
// applied one, or, when nothing was ever applied, nothing: the server has
// an empty tailnet (no auth keys), so it refuses every registration.
func (l *Pipeline) stillServedLocked() string {
	if l.appliedAt != nil {
		return "the last applied revision keeps serving"
	}
	return "nothing is applied yet, so no tailnet is served and every registration is refused until a revision applies"
}

// propagationWait bounds how long publishing waits for connected nodes to
// be sent a new config: a stuck client must not stall the pipeline. Not
// hearing back from every node in time is not an error: the config is in
// effect.
const propagationWait = 30 * time.Second

// stepTimes is how long each step of one revision took, for the log.
type stepTimes struct {
	load, prepare, test, apply, install, delivery time.Duration
}

func (t stepTimes) String() string {
	return fmt.Sprintf("load %d ms, compile %d ms, test %d ms, apply %d ms, install %d ms, delivery to every connected node %d ms",
		t.load.Milliseconds(), t.prepare.Milliseconds(), t.test.Milliseconds(), t.apply.Milliseconds(),
		t.install.Milliseconds(), t.delivery.Milliseconds())
}

// steps runs the steps for rev and returns the plan it applied; took
// gets the time of each step that ran.
func (l *Pipeline) steps(ctx context.Context, rev gitsync.Revision, took *stepTimes) (*reconcile.Plan, error) {
	fail := func(step string, err error) (*reconcile.Plan, error) {
		return nil, &StepError{Step: step, Commit: rev.ID, Err: err}
	}
	mark := time.Now()
	lap := func(d *time.Duration) {
		now := time.Now()
		*d, mark = now.Sub(mark), now
	}
	if rev.FS == nil {
		return fail(StepFetch, &reconcile.ConfigError{Err: errors.New("the revision has no files")})
	}
	if err := l.checkHead(ctx, rev); err != nil {
		return fail(StepFetch, err)
	}
	t, diags := schema.Load(ctx, rev.FS, ".")
	lap(&took.load)
	if err := ctx.Err(); err != nil {
		return fail(StepLoad, err)
	}
	if t == nil {
		return fail(StepLoad, &reconcile.ConfigError{Err: diags.Errors()})
	}
	if diags.HasErrors() {
		return fail(StepValidate, &reconcile.ConfigError{Err: diags.Errors()})
	}
	// The one compilation of this revision: what is tested, recorded and
	// installed below is prep.
	prep, err := l.cfg.Server.Prepare(t)
	lap(&took.prepare)
	if err != nil {
		var ds schema.Diagnostics
		if errors.As(err, &ds) {
			return fail(StepCompile, &reconcile.ConfigError{Err: ds.Errors()})
		}
		return fail(StepCheck, &reconcile.ConfigError{Err: err})
	}
	failed, err := l.cfg.Server.Test(ctx, prep)
	lap(&took.test)
	if err != nil {
		return fail(StepTest, err)
	}
	if ds := failed.Errors(); len(ds) > 0 {
		return fail(StepTest, &reconcile.ConfigError{Err: ds})
	}
	// Apply diffs against SQLite inside its transaction; re-applying the
	// commit recorded last changes and records nothing.
	plan, err := reconcile.Apply(l.applyContext(ctx), l.cfg.Store, prep.Tailnet(), Revision{
		Commit: rev.ID, Author: rev.Author, Message: rev.Message, CommittedAt: rev.CommittedAt, Parents: rev.Parents,
	})
	lap(&took.apply)
	if errors.Is(err, store.ErrSuperseded) {
		err = &reconcile.ConfigError{Err: err} // a replica behind; see checkHead
	}
	if err != nil {
		return fail(StepApply, err)
	}
	l.mu.Lock()
	published := l.published
	l.mu.Unlock()
	if plan.Empty() && published == rev.ID {
		return plan, nil // a restart re-reading the served commit
	}
	if err := l.cfg.Server.Install(ctx, prep); err != nil {
		return fail(StepPublish, err)
	}
	lap(&took.install)
	// Wait for delivery, so the propagation metric covers it.
	wctx, cancel := context.WithTimeout(ctx, propagationWait)
	defer cancel()
	l.cfg.Server.WaitPropagated(wctx)
	lap(&took.delivery)
	return plan, nil
}

// problems flattens err into one Problem per diagnostic.
func problems(err error) []Problem {
	var ds schema.Diagnostics
	if errors.As(err, &ds) && len(ds) > 0 {
		out := make([]Problem, 0, len(ds))
		for _, d := range ds {
			p := Problem{Path: d.Path, Message: d.Message, Hint: d.Hint}
			if d.Pos.IsValid() {
				p.Pos = d.Pos.String()
			}
			out = append(out, p)
		}
		return out
	}
	var se *StepError
	if errors.As(err, &se) {
		err = se.Err
	}
	return []Problem{{Message: err.Error()}}
}

func problemLines(ps []Problem) string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = "  " + p.String()
	}
	return strings.Join(lines, "\n")
}

// shortCommit abbreviates a commit SHA or a directory content ID for logs.
func shortCommit(id string) string {
	const dirPrefix = "dir:sha256:"
	if rest, ok := strings.CutPrefix(id, dirPrefix); ok && len(rest) > 12 {
		return dirPrefix + rest[:12]
	}
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
