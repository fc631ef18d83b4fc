package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// serverProc is a `tailplane serve --config` the load generator started
// and may kill -9 and start again on the same address and state.
type serverProc struct {
	bin       string
	configDir string
	stateDir  string
	listen    string // 127.0.0.1:port
	logPath   string
	args      []string // more flags for serve (replicas: database, server URL, relay address)
	cmd       *exec.Cmd
	exited    chan struct{} // closed when cmd exits
	// CPU accounting: cpuBase is what the earlier processes (before a
	// kill -9 and restart) used, cpuLast the current one's last reading.
	cpuBase, cpuLast time.Duration
}

// sampleCPU reads the running process's CPU into cpuLast and returns the
// total of every process this serverProc ran.
func (p *serverProc) sampleCPU() time.Duration {
	if p.cmd != nil {
		if c, err := procCPU(p.pid()); err == nil {
			p.cpuLast = c
		}
	}
	return p.cpuBase + p.cpuLast
}

func (p *serverProc) url() string { return "http://" + p.listen }

// start runs the server and waits until it answers /key.
func (p *serverProc) start(ctx context.Context) error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening the server log: %w", err)
	}
	cmd := exec.Command(p.bin, append([]string{"serve", "--config", p.configDir, "--state-dir", p.stateDir,
		"--listen", p.listen, "--stun-listen", "off"}, p.args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s serve: %w (hint: build it with `make build`, or pass --tailplane-bin)", p.bin, err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(p.exited) }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := fetchServerKey(ctx, p.url()); err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("tailplane serve exited while starting; its log: %s\n%s", p.logPath, logTail(p.logPath))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tailplane serve did not answer on %s within 2m; its log: %s", p.listen, p.logPath)
		}
	}
}

// kill sends SIGKILL and waits for the process to go.
func (p *serverProc) kill() {
	if p.cmd == nil {
		return
	}
	p.sampleCPU()
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
	p.cpuBase += p.cpuLast
	p.cpuLast = 0
}

// stop asks the server to shut down, and kills it after 10 s.
func (p *serverProc) stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		p.cmd = nil
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

func (p *serverProc) pid() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func logTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// fetchServerKey asks url for the server's Noise public key.
func fetchServerKey(ctx context.Context, url string) (key.MachinePublic, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/key?v=%d", url, tailcfg.CurrentCapabilityVersion), nil)
	if err != nil {
		return key.MachinePublic{}, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return key.MachinePublic{}, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return key.MachinePublic{}, fmt.Errorf("GET %s/key: HTTP %d", url, res.StatusCode)
	}
	var k tailcfg.OverTLSPublicKeyResponse
	if err := json.NewDecoder(res.Body).Decode(&k); err != nil {
		return key.MachinePublic{}, fmt.Errorf("GET %s/key: %w", url, err)
	}
	return k.PublicKey, nil
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
// every Linux architecture Go supports.
const clockTick = 100

// procCPU returns the user+system CPU time pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, fmt.Errorf("reading server CPU: %w", err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line, 12 and 13 after ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("reading server CPU: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("reading server CPU: bad /proc/%d/stat", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// procHWM returns pid's peak resident set size in bytes (VmHWM).
func procHWM(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("reading peak RSS: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("reading peak RSS: bad VmHWM line %q", line)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("reading peak RSS: no VmHWM in /proc/%d/status", pid)
}
