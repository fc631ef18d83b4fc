package testkit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/localsvc"
)

// HAProxyInstallHint is what a test without HAProxy says to do.
const HAProxyInstallHint = localsvc.HAProxyInstallHint

// HAProxy is a real HAProxy in TCP mode on a free port of 127.0.0.1 in
// front of backends (StartHAProxy): every connection goes to the first
// backend that passes its health check (a TCP connect every 200 ms; one
// failure takes it out), the later ones being backups; connections to a
// backend that goes down are cut.
type HAProxy struct {
	*localsvc.HAProxy
}

// haproxyConfig is the configuration of a TCP proxy on listen in front of
// backends, the first preferred.
func haproxyConfig(listen string, backends []string) string {
	var b strings.Builder
	b.WriteString(`global
	maxconn 4096
defaults
	mode tcp
	timeout connect 2s
	timeout client 1h
	timeout server 1h
	timeout check 1s
frontend tailplane
	bind ` + listen + `
	default_backend replicas
backend replicas
	default-server check inter 200ms fall 1 rise 1 on-marked-down shutdown-sessions
`)
	for i, addr := range backends {
		backup := ""
		if i > 0 {
			backup = " backup"
		}
		fmt.Fprintf(&b, "\tserver replica%d %s%s\n", i+1, addr, backup)
	}
	return b.String()
}

// StartHAProxy starts HAProxy in front of backends (host:port each) and
// stops it when the test ends; a failure, HAProxy missing included, fails t.
func StartHAProxy(t testing.TB, backends ...string) *HAProxy {
	t.Helper()
	if _, err := localsvc.FindHAProxy(); err != nil {
		t.Fatal(err)
	}
	addr, err := localsvc.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := localsvc.StartHAProxy(ctx, haproxyConfig(addr, backends), addr) // HAProxy binds the port again at once
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return &HAProxy{h}
}
