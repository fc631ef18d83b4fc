// Package tailscaled builds the real tailscaled and tailscale binaries (at the
// tailscale.com version tailplane is built with) once into a cache
// directory, and runs them unprivileged for end-to-end tests. BuildInto
// builds other tools the tests run (Pebble, Tailscale's gitops-pusher) the
// same way.
package tailscaled

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Binaries holds the paths of a built tailscaled and tailscale.
type Binaries struct {
	Tailscaled string
	Tailscale  string
	Version    string // the tailscale.com module version, e.g. "v1.102.5"
}

// Version returns the tailscale.com module version this program is built
// with, or asks the go command when build info lacks it.
func Version(ctx context.Context) (string, error) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "tailscale.com" {
				if d.Replace != nil {
					d = d.Replace
				}
				return d.Version, nil
			}
		}
	}
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "tailscale.com").Output()
	if err != nil {
		return "", fmt.Errorf("tailscaled: finding the tailscale.com version: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// CacheDir is where binaries for version are kept: $TAILPLANE_CACHE_DIR
// when set, else the user cache dir, under tailplane/tailscale-<version>.
func CacheDir(version string) (string, error) {
	base, err := CacheBase()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "tailscale-"+version), nil
}

// CacheBase is the directory test binaries are cached under:
// $TAILPLANE_CACHE_DIR when set, else <user cache dir>/tailplane.
func CacheBase() (string, error) {
	if base := os.Getenv("TAILPLANE_CACHE_DIR"); base != "" {
		return base, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("tailscaled: no cache directory (set TAILPLANE_CACHE_DIR): %w", err)
	}
	return filepath.Join(d, "tailplane"), nil
}

// Build returns the cached binaries of the tailscale.com version tailplane
// is built with, building them first if they are missing. A cold build
// takes minutes; concurrent callers wait on a lock file instead of
// building twice.
func Build(ctx context.Context) (*Binaries, error) {
	version, err := Version(ctx)
	if err != nil {
		return nil, err
	}
	// Build from tailplane's own module so go.sum pins the exact version.
	return build(ctx, version, moduleRoot(ctx))
}

// BuildCompat returns the cached binaries of an older Tailscale release
// kept for compatibility tests, building them first if they are missing.
// Each such release is a small module of its own under compat/<version>
// (next to this file) whose go.sum pins it.
func BuildCompat(ctx context.Context, version string) (*Binaries, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return nil, errors.New("tailscaled: cannot locate the compat modules")
	}
	dir := filepath.Join(filepath.Dir(file), "compat", version)
	if !exists(filepath.Join(dir, "go.mod")) {
		return nil, fmt.Errorf("tailscaled: no compat module for %s (want %s/go.mod)", version, dir)
	}
	return build(ctx, version, dir)
}

// build builds tailscaled and tailscale from the module in modDir into
// the cache directory of version, unless they are there already.
func build(ctx context.Context, version, modDir string) (*Binaries, error) {
	dir, err := CacheDir(version)
	if err != nil {
		return nil, err
	}
	b := &Binaries{Tailscaled: filepath.Join(dir, "tailscaled"), Tailscale: filepath.Join(dir, "tailscale"), Version: version}
	if err := BuildInto(ctx, dir, modDir, "tailscale.com/cmd/tailscaled", "tailscale.com/cmd/tailscale"); err != nil {
		return nil, fmt.Errorf("tailscaled: building tailscale %s: %w", version, err)
	}
	return b, nil
}

// GitopsPusher returns the path of Tailscale's gitops-pusher
// (tailscale.com/cmd/gitops-pusher, the client of the policy API that
// GitOps setups run in CI) at the tailscale.com version tailplane is
// built with, building it into the cache directory first if it is
// missing.
func GitopsPusher(ctx context.Context) (string, error) {
	version, err := Version(ctx)
	if err != nil {
		return "", err
	}
	dir, err := CacheDir(version)
	if err != nil {
		return "", err
	}
	if err := BuildInto(ctx, dir, "", "tailscale.com/cmd/gitops-pusher"); err != nil {
		return "", fmt.Errorf("tailscaled: building gitops-pusher of tailscale %s: %w", version, err)
	}
	return filepath.Join(dir, "gitops-pusher"), nil
}

// BuildInto builds the main packages pkgs of the module in modDir (empty:
// tailplane's own) into dir, one binary each named after the package's
// last path element, unless they are all there already. Concurrent callers
// wait on a lock file instead of building twice.
func BuildInto(ctx context.Context, dir, modDir string, pkgs ...string) error {
	built := func() bool {
		for _, p := range pkgs {
			if !exists(filepath.Join(dir, filepath.Base(p))) {
				return false
			}
		}
		return true
	}
	if built() {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", dir, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if built() {
		return nil // built by someone else while we waited
	}
	if modDir == "" {
		modDir = moduleRoot(ctx)
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", tmp + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = modDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", strings.Join(pkgs, " "), modDir, err, stderr.Bytes())
	}
	for _, p := range pkgs {
		name := filepath.Base(p)
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// moduleRoot finds the directory of tailplane's go.mod, starting from the
// working directory (tests run inside the module).
func moduleRoot(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod)
		}
	}
	return "."
}

func exists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// Node is one running tailscaled in userspace-networking mode.
type Node struct {
	Dir    string // state directory
	Socket string // LocalAPI socket
	SOCKS5 string // address of its SOCKS5 proxy into the tailnet
	bins   *Binaries
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
}

// Start runs tailscaled with its state in dir, without root: userspace
// networking, no log upload, and a SOCKS5 proxy on a free loopback port.
// env adds KEY=value settings (such as TS_DEBUG_ALWAYS_USE_DERP=true).
func (b *Binaries) Start(ctx context.Context, dir string, env ...string) (*Node, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &Node{Dir: dir, Socket: filepath.Join(dir, "tailscaled.sock"), SOCKS5: "127.0.0.1:" + strconv.Itoa(port), bins: b,
		exited: make(chan struct{})}
	n.log, err = os.Create(filepath.Join(dir, "tailscaled.log"))
	if err != nil {
		return nil, err
	}
	n.cmd = exec.Command(b.Tailscaled,
		"--tun=userspace-networking",
		"--statedir="+filepath.Join(dir, "state"),
		"--socket="+n.Socket,
		"--socks5-server="+n.SOCKS5,
		"--port=0",
		"--no-logs-no-support",
	)
	n.cmd.Env = append(append(os.Environ(), "TS_NO_LOGS_NO_SUPPORT=true"), env...)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		n.log.Close()
		return nil, fmt.Errorf("tailscaled: starting: %w", err)
	}
	go func() { n.cmd.Wait(); close(n.exited) }()
	// Wait for the LocalAPI to answer.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := n.Tailscale(ctx, "version"); err == nil {
			if _, err := n.Tailscale(ctx, "status", "--json"); err == nil {
				return n, nil
			}
		}
		select {
		case <-n.exited:
			return nil, fmt.Errorf("tailscaled exited early; log:\n%s", n.Log())
		case <-ctx.Done():
			n.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.Close()
			return nil, fmt.Errorf("tailscaled did not come up in 30s; log:\n%s", n.Log())
		}
	}
}

// Tailscale runs the tailscale CLI against this node and returns its
// combined output.
func (n *Node) Tailscale(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, n.bins.Tailscale, append([]string{"--socket=" + n.Socket}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.Bytes(), fmt.Errorf("tailscale %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.Bytes(), nil
}

// Command returns the tailscale CLI command for args against this node,
// not yet started, for a command that runs in the background (such as an
// interactive `tailscale up`).
func (n *Node) Command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, n.bins.Tailscale, append([]string{"--socket=" + n.Socket}, args...)...)
}

// Log returns what tailscaled printed so far.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.log.Name())
	return string(b)
}

// Signal sends sig to tailscaled: syscall.SIGSTOP freezes it with its
// connections left open, syscall.SIGCONT thaws it.
func (n *Node) Signal(sig os.Signal) error { return n.cmd.Process.Signal(sig) }

// Kill kills tailscaled as a crash would (SIGKILL) and waits for it to
// exit; its state directory stays, for a restart.
func (n *Node) Kill() error {
	if err := n.cmd.Process.Kill(); err != nil {
		return err
	}
	<-n.exited
	return nil
}

// Close stops tailscaled and waits for it to exit.
func (n *Node) Close() error {
	if n.cmd.Process != nil {
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(10 * time.Second):
			n.cmd.Process.Kill()
			<-n.exited
		}
	}
	return n.log.Close()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, errors.New("tailscaled: no free port: " + err.Error())
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
