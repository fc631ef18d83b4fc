package gitsync

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/internal/testkit"
)

// TestRepoLoop runs the real loop against git-http-backend: the first
// revision, a new commit picked up by polling, the remote going down (an
// error in Status, backoff) and coming back with a new head, a webhook-style
// Trigger, and Close.
func TestRepoLoop(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit("first", v1, commitOpts{})
	srv := testkit.StartGitServer(t, testkit.GitServerConfig{Root: u.root})
	r, err := NewRepo(testContext(t), Config{
		URL:        srv.URL("tailnet.git"),
		Poll:       20 * time.Millisecond,
		MaxBackoff: 80 * time.Millisecond,
		Logf:       t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	rev := next(t, r)
	if rev.ID != c1 {
		t.Fatalf("first revision %s, want %s", rev.ID, c1)
	}
	if diff := cmp.Diff(v1, readAll(t, rev.FS)); diff != "" {
		t.Errorf("first revision files (-want +got):\n%s", diff)
	}
	st := waitStatus(t, r, "head is c1", func(st Status) bool { return st.Head == c1 })
	if st.Err != nil || st.Branch != "main" || st.Path != "." || st.Source != srv.URL("tailnet.git") {
		t.Errorf("status after first revision: %+v", st)
	}

	c2 := u.commit("second", v2, commitOpts{})
	if rev := next(t, r); rev.ID != c2 {
		t.Fatalf("second revision %s, want %s", rev.ID, c2)
	}

	srv.Stop()
	st = waitStatus(t, r, "two failures", func(st Status) bool { return st.Failures >= 2 })
	if KindOf(st.Err) != ErrRetry || st.Head != c2 {
		t.Errorf("status while down: %+v", st)
	}
	if gap := st.NextPoll.Sub(st.LastAttempt); gap <= 20*time.Millisecond || gap > 80*time.Millisecond {
		t.Errorf("backoff after %d failures is %v, want doubled from the poll interval and capped", st.Failures, gap)
	}
	c3 := u.commit("while down", v3, commitOpts{})
	srv.Start()
	if rev := next(t, r); rev.ID != c3 {
		t.Fatalf("revision after the remote came back %s, want %s", rev.ID, c3)
	}
	st = waitStatus(t, r, "recovered", func(st Status) bool { return st.Err == nil && st.Failures == 0 })
	if st.LastSuccess.IsZero() || st.Head != c3 {
		t.Errorf("status after recovery: %+v", st)
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-r.Revisions(); ok {
		t.Error("revisions channel still open after Close")
	}
	r.Trigger() // after Close: must not block or panic
	if err := r.Close(); err != nil {
		t.Error(err)
	}
}

// TestRepoTrigger uses a poll interval far longer than the test, so only
// Trigger can make the loop notice the new commit.
func TestRepoTrigger(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit("first", v1, commitOpts{})
	r, err := NewRepo(testContext(t), Config{URL: u.fileURL(), Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if rev := next(t, r); rev.ID != c1 {
		t.Fatalf("first revision %s, want %s", rev.ID, c1)
	}
	c2 := u.commit("second", v2, commitOpts{})
	r.Trigger()
	r.Trigger() // coalesces with the first
	if rev := next(t, r); rev.ID != c2 {
		t.Fatalf("triggered revision %s, want %s", rev.ID, c2)
	}
}

// TestRepoChanged: the channel Changed returns is closed by the next check
// of the remote, even one that brings no new revision, so a waiter sees
// the new Status without polling.
func TestRepoChanged(t *testing.T) {
	u := newUpstream(t)
	u.commit("first", v1, commitOpts{})
	r, err := NewRepo(testContext(t), Config{URL: u.fileURL(), Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	next(t, r) // the first check is recorded before its revision is sent
	changed := r.Changed()
	before := r.Status().LastAttempt
	select {
	case <-changed:
		t.Fatal("Changed was closed before the next check")
	default:
	}
	r.Trigger()
	select {
	case <-changed:
	case <-time.After(30 * time.Second):
		t.Fatal("Changed was not closed by a triggered check")
	}
	if !r.Status().LastAttempt.After(before) {
		t.Errorf("Changed fired, but the status shows no new check (last attempt %v, before %v)", r.Status().LastAttempt, before)
	}
}

func TestBackoff(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{1, 30 * s}, {2, 60 * s}, {3, 120 * s}, {4, 240 * s}, {5, 300 * s}, {50, 300 * s}} {
		if got := backoff(30*s, 300*s, tc.failures); got != tc.want {
			t.Errorf("backoff after %d failures = %v, want %v", tc.failures, got, tc.want)
		}
	}
}

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want ErrorKind
	}{
		{nil, 0},
		{errors.New("plain"), ErrRetry},
		{retryErr("x"), ErrRetry},
		{commitErr("abc", errors.New("bad")), ErrNeedsCommit},
		{errors.Join(errors.New("ctx"), commitErr("abc", errors.New("bad"))), ErrNeedsCommit},
	} {
		if got := KindOf(tc.err); got != tc.want {
			t.Errorf("KindOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestRevisionConcurrentReads reads one revision from several goroutines
// while the loop fetches newer commits (run with -race).
func TestRevisionConcurrentReads(t *testing.T) {
	u := newUpstream(t)
	u.commit("first", v1, commitOpts{})
	r, err := NewRepo(testContext(t), Config{URL: u.fileURL(), Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rev := next(t, r)
	stop := make(chan struct{})
	errs := make(chan string, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := readFiles(rev.FS)
				if err != nil || !cmp.Equal(v1, got) {
					errs <- fmt.Sprintf("error %v, diff:\n%s", err, cmp.Diff(v1, got))
					return
				}
			}
		})
	}
	for i := range 3 {
		c := u.commit(fmt.Sprint("commit ", i), map[string]string{"n.hujson": fmt.Sprint(i)}, commitOpts{})
		if got := next(t, r); got.ID != c {
			t.Errorf("revision %s, want %s", got.ID, c)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("first revision changed while read (-want +got): %s", e)
	}
}
