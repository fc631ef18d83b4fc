package testkit

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Lines logged from many goroutines arrive whole, one per line.
func TestLogBuffer(t *testing.T) {
	var l LogBuffer
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { l.Logf("line %d of %s", i, "twenty") })
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(l.String(), "\n"), "\n")
	seen := map[string]bool{}
	for _, line := range lines {
		seen[line] = true
	}
	for i := range 20 {
		if want := fmt.Sprintf("line %d of twenty", i); !seen[want] {
			t.Errorf("the log lacks %q:\n%s", want, l.String())
		}
	}
	if len(lines) != 20 {
		t.Errorf("the log has %d lines, want 20:\n%s", len(lines), l.String())
	}
}

// Write takes a command's output as an io.Writer; String sees it.
func TestLogBufferWrite(t *testing.T) {
	var l LogBuffer
	fmt.Fprint(&l, "partial ")
	l.Logf("line")
	if got, want := l.String(), "partial line\n"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
