package testkit

import (
	"fmt"
	"strings"
	"sync"
)

// LogBuffer collects log lines from several goroutines, for a test that
// searches what a server logged. Its zero value is empty and ready.
type LogBuffer struct {
	mu sync.Mutex // guards the field below
	b  strings.Builder
}

// Logf appends one line formatted as fmt.Sprintf does; it fits the Logf
// fields of tailplane's configs.
func (l *LogBuffer) Logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, format+"\n", args...)
}

// Write appends p, so a LogBuffer can take a command's output while the
// test reads it.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns every line logged so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
