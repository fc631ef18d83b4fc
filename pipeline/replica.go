package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tailplane/tailplane/gitsync"
	"github.com/tailplane/tailplane/reconcile"
)

// Replica is what the pipeline of one of several replicas on one database
// needs (a *replica.Replica). Exactly one replica, the applier, applies
// revisions from the source, under Fence; the others keep the source's
// latest revision pending and, whenever Changed says so, install the
// revision the applier recorded, read from the store. A follower that
// becomes the applier applies its pending revision (re-applying the
// recorded one changes nothing).
type Replica interface {
	// Applier reports whether this replica applies revisions now.
	Applier() bool
	// Fence returns ctx for the apply step: its transaction fails unless
	// this replica is still the applier then.
	Fence(ctx context.Context) context.Context
	// Changed receives when Applier may have changed or another replica
	// recorded a revision.
	Changed() <-chan struct{}
	// SyncApplier asks the applier's pipeline to Sync (a webhook reached
	// this replica); it never blocks.
	SyncApplier()
}

// forwardSync passes a Sync on to the applier when this replica is not it.
func (l *Pipeline) forwardSync() {
	if l.cfg.Replica != nil && !l.cfg.Replica.Applier() {
		l.cfg.Replica.SyncApplier()
	}
}

// applies reports whether this pipeline applies revisions now.
func (l *Pipeline) applies() bool { return l.cfg.Replica == nil || l.cfg.Replica.Applier() }

// replicaChanged is Replica.Changed, or nil (never ready) without replicas.
func (l *Pipeline) replicaChanged() <-chan struct{} {
	if l.cfg.Replica == nil {
		return nil
	}
	return l.cfg.Replica.Changed()
}

// applyContext is ctx for the apply step: fenced among replicas.
func (l *Pipeline) applyContext(ctx context.Context) context.Context {
	if l.cfg.Replica == nil {
		return ctx
	}
	return l.cfg.Replica.Fence(ctx)
}

// installRecorded installs the latest revision in the store when it is not
// the one served: another replica applied it. It is read from the store
// as it was recorded (its objects are at least as new as the revision,
// read first: a newer one comes with a notification of its own), and
// recorded as an OK attempt, installed rather than applied here. After a
// failure, delay is when to try again.
func (l *Pipeline) installRecorded(ctx context.Context) (delay time.Duration, err error) {
	st := l.cfg.Store
	rev, ok, err := st.LatestRevision(ctx)
	if err != nil || !ok {
		return l.cfg.MinBackoff, err
	}
	l.mu.Lock()
	served := l.published
	l.mu.Unlock()
	if rev.Commit == served {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.attempt == nil { // a follower started on what the applier applied
			l.attempt = &Attempt{Revision: Revision{Commit: rev.Commit, Author: rev.Author, Message: rev.Message, CommittedAt: rev.CommittedAt},
				Started: time.Now(), Finished: time.Now(), OK: true, Summary: "served as another replica applied it: " + rev.Summary}
			l.changedLocked()
		}
		return 0, nil
	}
	started := time.Now()
	err = func() error {
		t, err := reconcile.LoadApplied(ctx, st)
		if err != nil {
			return err
		}
		prep, err := l.cfg.Server.Prepare(t)
		if err != nil {
			return fmt.Errorf("the recorded revision does not compile here: %w (hint: do all replicas run the same tailplane version?)", err)
		}
		return l.cfg.Server.Install(ctx, prep)
	}()
	if err != nil {
		l.cfg.Logf("reconcile: revision %s, applied by another replica, not installed: %v; trying again", shortCommit(rev.Commit), err)
		return l.cfg.MinBackoff, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.changedLocked()
	r := rev
	l.appliedAt, l.published = &r, rev.Commit
	l.attempt = &Attempt{
		Revision: Revision{Commit: rev.Commit, Author: rev.Author, Message: rev.Message, CommittedAt: rev.CommittedAt},
		Started:  started, Finished: time.Now(), OK: true,
		Summary: "installed as another replica applied it: " + rev.Summary,
	}
	l.cfg.Logf("reconcile: revision %s, applied by another replica, installed", shortCommit(rev.Commit))
	return 0, nil
}

// headSource is a Source that can tell its head as it is now, not as last
// fetched (gitsync.Repo and gitsync.Dir).
type headSource interface {
	Head(ctx context.Context) (string, error)
}

// errHeadMoved is checkHead's error for a revision that is no longer the
// source's head: it is dropped, and the source fetches the head.
var errHeadMoved = errors.New("the source's head moved on")

// checkHead makes sure, on a replica, that rev is still the head of the
// source just before it is applied. A replica's source may be behind the
// one that applied last: its cache was fetched before the applier it
// replaces moved on, or its remote is a mirror that lags. So the applier
// asks the remote for its head now (after it became the applier); a
// revision that is not the head is dropped (errHeadMoved) and the head
// fetched, and one that cannot be checked (the remote is down) is retried
// later, meanwhile nothing is applied. A head that is a revision recorded
// before and superseded since is refused by the store
// (store.ErrSuperseded). A single server applies what its source brings.
func (l *Pipeline) checkHead(ctx context.Context, rev gitsync.Revision) error {
	src, ok := l.cfg.Source.(headSource)
	if l.cfg.Replica == nil || !ok {
		return nil
	}
	head, err := src.Head(ctx)
	if err != nil {
		return fmt.Errorf("checking that it is still the head of the source before applying it: %w", err)
	}
	if head != rev.ID {
		l.cfg.Logf("reconcile: revision %s is not the head of the source any more (%s is); fetching that first", shortCommit(rev.ID), shortCommit(head))
		return errHeadMoved
	}
	return nil
}
