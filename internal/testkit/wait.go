package testkit

import (
	"context"
	"testing"
	"time"
)

// WaitFor polls cond every 50 ms until it reports true, and fails t when
// ctx ends first, with what was awaited and the last state cond described.
// It is for facts that offer no change notification (a real client's
// status, a peer showing up in a netmap); waiting is never a speed claim.
func WaitFor(t testing.TB, ctx context.Context, what string, cond func() (ok bool, state string)) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		case <-tick.C:
		}
	}
}
