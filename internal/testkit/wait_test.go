package testkit

import (
	"context"
	"testing"
	"time"
)

func TestWaitForReturnsOnceTrue(t *testing.T) {
	calls := 0
	WaitFor(t, context.Background(), "the third call", func() (bool, string) {
		calls++
		return calls == 3, "not yet"
	})
	if calls != 3 {
		t.Errorf("cond called %d times, want 3", calls)
	}
}

// recorder is a testing.TB that records Fatalf instead of stopping.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = format
	panic(r)
}

func TestWaitForFailsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != r {
				panic(p)
			}
		}()
		WaitFor(r, ctx, "never", func() (bool, string) { return false, "still false" })
	}()
	if r.msg == "" {
		t.Fatal("WaitFor returned without failing although cond never held")
	}
}
