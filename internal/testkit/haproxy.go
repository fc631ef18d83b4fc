package testkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// HAProxyInstallHint is what a test without HAProxy says to do.
const HAProxyInstallHint = "apt-get install haproxy (.ci/run installs it when missing)"

// HAProxy is a real HAProxy in TCP mode on a free port of 127.0.0.1 in
// front of backends (StartHAProxy): every connection goes to the first
// backend that passes its health check (a TCP connect every 200 ms; one
// failure takes it out), the later ones being backups; connections to a
// backend that goes down are cut.
type HAProxy struct {
	Addr string // host:port clients connect to
	cmd  *exec.Cmd
	log  *LogBuffer
}

// findHAProxy returns the haproxy binary, or an error with the install hint.
func findHAProxy() (string, error) {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy", nil
	}
	return "", fmt.Errorf("haproxy is not installed: %s", HAProxyInstallHint)
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
	bin, err := findHAProxy()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // HAProxy binds it again at once
	cfgFile := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(haproxyConfig(addr, backends)), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &HAProxy{Addr: addr, log: new(LogBuffer)}
	h.cmd = exec.Command(bin, "-db", "-f", cfgFile) // -db: in the foreground
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("starting haproxy: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- h.cmd.Wait() }()
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		<-exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return h
		}
		select {
		case err := <-exited:
			t.Fatalf("haproxy exited: %v\n%s", err, h.log.String())
		case <-ctx.Done():
			t.Fatalf("haproxy does not listen on %s: %v\n%s", addr, errors.Join(err, ctx.Err()), h.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Log is what HAProxy wrote.
func (h *HAProxy) Log() string { return h.log.String() }
