package gitsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"
)

// Revision is one version of the tailnet config, ready to be loaded with
// schema.Load(ctx, rev.FS, ".").
type Revision struct {
	// ID is the commit SHA for a Git source and "dir:sha256:<hex>" (a hash
	// of the file names and contents) for a local directory.
	ID string
	// Author is "Name <email>" of the commit author; empty for a directory.
	Author string
	// Message is the full commit message; empty for a directory.
	Message string
	// CommittedAt is the committer time, or the time a directory snapshot
	// was taken.
	CommittedAt time.Time
	// FS is the config tree at this revision, rooted at Config.Path. It is
	// immutable and safe for concurrent use.
	FS fs.FS
	// Verified is the signer when signature verification is on: the
	// OpenPGP key's primary identity ("Name <email>") or the principals of
	// the SSH allowed signer ("alice@example.com"). Empty otherwise.
	Verified string
	// Parents are the commit's parents' SHAs (they need not be in the
	// shallow cache); empty for a directory. Replicas record them, so as
	// not to go back to a parent later (package pipeline).
	Parents []string
}

// Source is what both Repo and Dir provide: a stream of revisions, a way to
// ask for a sync now, a status snapshot, and Close.
type Source interface {
	// Revisions delivers each new revision once. When the consumer is
	// slower than the source, a revision not yet received is replaced by
	// the newer one. The channel is closed after Close.
	Revisions() <-chan Revision
	// Trigger asks for a sync as soon as possible; it never blocks and
	// calls made while one is pending coalesce.
	Trigger()
	// Status reports the source's health.
	Status() Status
	// Changed returns a channel that is closed at the next change of
	// Status (each check of the source records one), for waiting without
	// polling: take the channel, read Status, then wait on the channel.
	Changed() <-chan struct{}
	// Close stops the loop and waits for it to finish.
	Close() error
}

// feed is what Repo and Dir share to implement Source: the revision
// channel, the trigger, the status and the shutdown of their loop
// goroutine, which closes done and out when it returns.
type feed struct {
	out     chan Revision
	trigger chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}

	mu      sync.Mutex // guards the fields below
	status  Status
	changed chan struct{} // closed and replaced when status changes
}

func newFeed(st Status) feed {
	return feed{out: make(chan Revision), trigger: make(chan struct{}, 1), done: make(chan struct{}), status: st, changed: make(chan struct{})}
}

// Revisions implements Source.
func (f *feed) Revisions() <-chan Revision { return f.out }

// Trigger implements Source: a Repo fetches now (use it from a push
// webhook), a Dir reads the directory again.
func (f *feed) Trigger() {
	select {
	case f.trigger <- struct{}{}:
	default:
	}
}

// Status implements Source.
func (f *feed) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// Changed implements Source.
func (f *feed) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// changedLocked wakes the waiters of Changed; the caller changed status.
func (f *feed) changedLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Close implements Source. It is safe to call more than once.
func (f *feed) Close() error {
	f.cancel()
	<-f.done
	return nil
}

// Status is a snapshot of a source's health, for logs, metrics and the
// admin API.
type Status struct {
	// Source is the remote URL (without credentials) or the directory.
	Source string
	// Branch and Path are the followed branch and subdirectory (Repo only).
	Branch, Path string
	// Head is the ID of the newest revision made (sent, or waiting to be
	// received on Revisions); empty before the first.
	Head string
	// LastAttempt is when the source was last checked.
	LastAttempt time.Time
	// LastSuccess is when the source was last checked without error.
	LastSuccess time.Time
	// NextPoll is when the next check is due (zero for Dir when only
	// events are awaited).
	NextPoll time.Time
	// Failures counts consecutive failed checks; it drives the backoff.
	Failures int
	// Err is the error of the last check, nil after a successful one. Its
	// text holds no credentials (they are redacted) and its chain only the
	// sentinel errors of go-git's transport and the context. An
	// ErrNeedsCommit error stays until a new head arrives.
	Err error
}

// ErrorKind classes a sync error by what makes it go away.
type ErrorKind int

const (
	// ErrRetry is a transient failure (network, server, credentials): the
	// loop backs off and tries again.
	ErrRetry ErrorKind = iota + 1
	// ErrNeedsCommit is a problem with the commit itself (bad signature,
	// missing path): it is not retried until the branch moves.
	ErrNeedsCommit
)

func (k ErrorKind) String() string {
	switch k {
	case ErrRetry:
		return "retry later"
	case ErrNeedsCommit:
		return "needs a new commit"
	}
	return fmt.Sprintf("ErrorKind(%d)", int(k))
}

// SyncError is the error type in Status.Err.
type SyncError struct {
	Kind ErrorKind
	// Commit is the refused commit for ErrNeedsCommit; empty otherwise.
	Commit string
	Err    error
}

func (e *SyncError) Error() string {
	if e.Commit != "" {
		return fmt.Sprintf("commit %s refused: %v", shortID(e.Commit), e.Err)
	}
	return e.Err.Error()
}

func (e *SyncError) Unwrap() error { return e.Err }

// KindOf reports the ErrorKind of err, ErrRetry when err is not a
// *SyncError, and 0 for nil.
func KindOf(err error) ErrorKind {
	if err == nil {
		return 0
	}
	var se *SyncError
	if errors.As(err, &se) {
		return se.Kind
	}
	return ErrRetry
}

func retryErr(format string, args ...any) error {
	return &SyncError{Kind: ErrRetry, Err: fmt.Errorf(format, args...)}
}

func commitErr(commit string, err error) error {
	return &SyncError{Kind: ErrNeedsCommit, Commit: commit, Err: err}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
