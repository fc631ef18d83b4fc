package testkit

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/tailscaled"
	"golang.org/x/net/proxy"
)

// TailscaledBinaries returns the cached tailscaled and tailscale binaries
// of version ("" for the version tailplane is built with). A cold build
// takes minutes (more while other packages' tests share the cores); once
// cached it is instant.
func TailscaledBinaries(t testing.TB, version string) *tailscaled.Binaries {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	var bins *tailscaled.Binaries
	var err error
	if version == "" {
		bins, err = tailscaled.Build(ctx)
	} else {
		bins, err = tailscaled.BuildCompat(ctx, version)
	}
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

// GitopsPusher returns the cached gitops-pusher binary of the version
// tailplane is built with, building it first (seconds with a warm build
// cache) when it is missing.
func GitopsPusher(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	bin, err := tailscaled.GitopsPusher(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// StartTailscaled runs a tailscaled from bins with its state in dir (the
// node is named after dir's last element in the test log) and env's
// KEY=value settings, and stops it when the test ends; a failed test's
// log gets the tail of the node's log.
func StartTailscaled(t testing.TB, ctx context.Context, bins *tailscaled.Binaries, dir string, env ...string) *tailscaled.Node {
	t.Helper()
	n, err := bins.Start(ctx, dir, env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s (tailscale %s) log (tail):\n%s", filepath.Base(dir), bins.Version, tail(n.Log(), 60))
		}
		n.Close()
	})
	return n
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ReadGreetingVia is ReadGreeting for a tailscaled node: it dials addr
// through n's SOCKS5 proxy into the tailnet and returns what a Greet
// server there says, within 5 s.
func ReadGreetingVia(ctx context.Context, n *tailscaled.Node, addr string) (string, error) {
	d, err := proxy.SOCKS5("tcp", n.SOCKS5, nil, &net.Dialer{})
	if err != nil {
		return "", err
	}
	return readGreeting(ctx, addr, d.(proxy.ContextDialer).DialContext)
}
