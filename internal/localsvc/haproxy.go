package localsvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// HAProxyInstallHint is what a caller without HAProxy is told to do.
const HAProxyInstallHint = "apt-get install haproxy (.ci/run installs it when missing)"

// HAProxy is a running HAProxy (StartHAProxy).
type HAProxy struct {
	Addr   string // host:port clients connect to
	dir    string // temporary directory: haproxy.cfg, haproxy.log
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
}

// FindHAProxy returns the haproxy binary, or an error with the install hint.
func FindHAProxy() (string, error) {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy", nil
	}
	return "", fmt.Errorf("haproxy is not installed (hint: %s)", HAProxyInstallHint)
}

// FreeLoopbackAddr returns a 127.0.0.1 address whose port is free right now.
func FreeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// StartHAProxy runs HAProxy in the foreground with the configuration cfg
// (the whole haproxy.cfg text), whose frontend binds addr, and waits until
// addr takes connections. Stop ends it.
func StartHAProxy(ctx context.Context, cfg, addr string) (*HAProxy, error) {
	bin, err := FindHAProxy()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tailplane-haproxy-")
	if err != nil {
		return nil, err
	}
	h := &HAProxy{Addr: addr, dir: dir, exited: make(chan struct{})}
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logFile.Close()
	h.cmd = exec.Command(bin, "-db", "-f", cfgFile) // -db: in the foreground
	h.cmd.Stdout, h.cmd.Stderr = logFile, logFile
	if err := h.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting haproxy: %w", err)
	}
	go func() { h.cmd.Wait(); close(h.exited) }()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return h, nil
		}
		select {
		case <-h.exited:
			log := h.Log()
			h.Stop()
			return nil, fmt.Errorf("haproxy exited while starting:\n%s", log)
		case <-ctx.Done():
			log := h.Log()
			h.Stop()
			return nil, fmt.Errorf("haproxy does not listen on %s: %v\n%s", addr, errors.Join(err, ctx.Err()), log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Log is what HAProxy wrote.
func (h *HAProxy) Log() string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "haproxy.log"))
	return tailLines(string(b), 200)
}

// Stop kills HAProxy and removes its directory.
func (h *HAProxy) Stop() {
	h.cmd.Process.Kill()
	<-h.exited
	os.RemoveAll(h.dir)
}
