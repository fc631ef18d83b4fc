package testkit

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/tailplane/tailplane/internal/tailscaled"
	"tailscale.com/ipn/ipnstate"
)

// Up is a `tailscale up` without an auth key running in the background, as
// a person runs it: it prints a login URL and waits until the login
// completes.
type Up struct {
	t    testing.TB
	out  LogBuffer // the command's combined output
	done chan struct{}
	err  error // set before done is closed
}

// StartTailscaleUp runs `tailscale up --login-server=server` with args on
// n in the background; the test's end stops it.
func StartTailscaleUp(t testing.TB, ctx context.Context, n *tailscaled.Node, server string, args ...string) *Up {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	u := &Up{t: t, done: make(chan struct{})}
	cmd := n.Command(ctx, append([]string{"up", "--login-server=" + server}, args...)...)
	w := logWriter{&u.out}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting tailscale up: %v", err)
	}
	go func() {
		u.err = cmd.Wait()
		close(u.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-u.done
	})
	return u
}

// logWriter appends what a command writes to a LogBuffer.
type logWriter struct{ b *LogBuffer }

func (w logWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	return w.b.b.Write(p)
}

var authURLRE = regexp.MustCompile(`To authenticate, visit:\s+(\S+)`)

// AuthURLs returns the login URLs printed so far, oldest first.
func (u *Up) AuthURLs() []string {
	var urls []string
	for _, m := range authURLRE.FindAllStringSubmatch(u.out.String(), -1) {
		urls = append(urls, m[1])
	}
	return urls
}

// AuthURL waits until `tailscale up` has printed its nth login URL
// (counting from 1) and returns it; it fails the test when ctx ends
// first, or when the command exits without printing it.
func (u *Up) AuthURL(ctx context.Context, nth int) string {
	u.t.Helper()
	WaitFor(u.t, ctx, fmt.Sprintf("tailscale up to print login URL #%d", nth), func() (bool, string) {
		select {
		case <-u.done:
			u.t.Fatalf("tailscale up exited (%v) before printing login URL #%d:\n%s", u.err, nth, u.out.String())
		default:
		}
		return len(u.AuthURLs()) >= nth, u.out.String()
	})
	return u.AuthURLs()[nth-1]
}

// Wait waits until `tailscale up` exits or ctx ends and returns its
// output and exit error.
func (u *Up) Wait(ctx context.Context) (string, error) {
	select {
	case <-u.done:
		return u.out.String(), u.err
	case <-ctx.Done():
		return u.out.String(), fmt.Errorf("tailscale up still running: %w", ctx.Err())
	}
}

// Output is what the command printed so far.
func (u *Up) Output() string { return strings.TrimSpace(u.out.String()) }

// TailscaleStatus is `tailscale status --json` of n.
func TailscaleStatus(ctx context.Context, n *tailscaled.Node) (*ipnstate.Status, error) {
	out, err := n.Tailscale(ctx, "status", "--json")
	if err != nil {
		return nil, err
	}
	st := new(ipnstate.Status)
	if err := json.Unmarshal(out, st); err != nil {
		return nil, fmt.Errorf("decoding tailscale status: %w", err)
	}
	return st, nil
}
