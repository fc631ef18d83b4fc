package control

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/tailscaled"
	"github.com/tailplane/tailplane/internal/testkit"
	"golang.org/x/net/proxy"
	"tailscale.com/ipn/ipnstate"
)

// e2eConfig is the tailnet the end-to-end test declares, as a user writes
// it: alice's nodes may reach each other on port allowed only.
func e2eConfig(allowed int) string {
	return `{
	// End-to-end test tailnet.
	"tailnet": {"name": "e2e", "domain": "tail.test"},
	"users": {"alice@example.com": {"role": "admin"}},
	"dns": {"magicDNS": true},
	"authKeys": {
		"laptops": {"user": "alice@example.com", "reusable": true, "secretHash": "` + testkit.SecretHash(aliceKey) + `"},
	},
	"acls": [
		{"action": "accept", "src": ["alice@example.com"], "dst": ["alice@example.com:` + fmt.Sprint(allowed) + `"]},
	],
}
`
}

// buildTailplane builds the tailplane command into dir.
func buildTailplane(t *testing.T, ctx context.Context, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tailplane")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/tailplane/tailplane/cmd/tailplane").CombinedOutput()
	if err != nil {
		t.Fatalf("building tailplane: %v\n%s", err, out)
	}
	return bin
}

// startServeBinary runs `tailplane serve` and returns its URL once it answers.
// With tc set it serves HTTPS with tc's certificate.
func startServeBinary(t *testing.T, ctx context.Context, bin, configDir, stateDir string, tc *testCert) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(filepath.Join(stateDir, "..", "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--config", configDir, "--state-dir", stateDir, "--listen", addr}
	url, client := "http://"+addr, http.DefaultClient
	if tc != nil {
		args = append(args, "--tls-cert", tc.certFile, "--tls-key", tc.keyFile)
		url, client = "https://"+addr, tc.client()
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("tailplane serve log:\n%s", b)
		}
	})
	testkit.WaitFor(t, ctx, "tailplane serve to answer", func() (bool, string) {
		res, err := client.Get(url + "/key?v=142")
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == 200, res.Status
	})
	return url
}

func statusOf(ctx context.Context, n *tailscaled.Node) (*ipnstate.Status, error) {
	return testkit.TailscaleStatus(ctx, n)
}

// e2eRun is one end-to-end run: `tailplane serve` (the real binary) on a
// config declaring e2eConfig, and a scratch directory for its nodes.
type e2eRun struct {
	ctx  context.Context // bounds the run
	root string          // scratch directory
	url  string          // the server's URL, for --login-server
	tc   *testCert       // the server's certificate when it serves HTTPS
}

// startE2E runs `tailplane serve` on e2eConfig(allowedPort), over HTTPS
// with a private CA when useTLS is set.
func startE2E(t *testing.T, allowedPort int, useTLS bool) *e2eRun {
	t.Helper()
	return startServeConfig(t, e2eConfig(allowedPort), useTLS)
}

// startServeConfig builds tailplane and runs `tailplane serve` on a config
// directory holding config, over HTTPS with a private CA when useTLS is set.
func startServeConfig(t *testing.T, config string, useTLS bool) *e2eRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	r := &e2eRun{ctx: ctx, root: t.TempDir()}
	bin := buildTailplane(t, ctx, r.root)
	configDir := filepath.Join(r.root, "config")
	if err := os.MkdirAll(configDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(configDir, "tailnet.hujson"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if useTLS {
		r.tc = newTestCert(t, r.root)
	}
	r.url = startServeBinary(t, ctx, bin, configDir, filepath.Join(r.root, "state"), r.tc)
	return r
}

// join starts a tailscaled from bins and brings it up on the server as
// name with alice's auth key; env adds KEY=value settings. On failure the
// test log gets the tail of the node's log.
func (r *e2eRun) join(t *testing.T, bins *tailscaled.Binaries, name string, env ...string) *tailscaled.Node {
	t.Helper()
	if r.tc != nil {
		env = append(env, "SSL_CERT_FILE="+r.tc.caFile)
	}
	n := testkit.StartTailscaled(t, r.ctx, bins, filepath.Join(r.root, name), env...)
	if out, err := n.Tailscale(r.ctx, "up", "--login-server="+r.url, "--auth-key="+aliceKey, "--hostname="+name); err != nil {
		t.Fatalf("%s (tailscale %s): tailscale up: %v\n%s", name, bins.Version, err, out)
	}
	return n
}

func TestEndToEndTailscaled(t *testing.T) {
	bins := testkit.TailscaledBinaries(t, "")
	// In userspace-networking mode a node forwards tailnet connections to
	// its own address to the host's loopback at the same port.
	allowedPort := testkit.GreetOnLoopback(t, "hello over the tailnet\n")
	deniedPort := testkit.GreetOnLoopback(t, "this port is denied\n")
	run := startE2E(t, allowedPort, false)
	ctx := run.ctx

	nodes := map[string]*tailscaled.Node{}
	for _, name := range []string{"alpha", "beta", "gamma"} {
		var env []string
		if name == "gamma" {
			env = []string{"TS_DEBUG_ALWAYS_USE_DERP=true"} // gamma's traffic must go through the embedded relay
		}
		nodes[name] = run.join(t, bins, name, env...)
	}
	alpha, gamma := nodes["alpha"], nodes["gamma"]

	var betaIP string
	t.Run("status-lists-peer-by-magicdns-name", func(t *testing.T) {
		testkit.WaitFor(t, ctx, "alpha to list beta", func() (bool, string) {
			st, err := statusOf(ctx, alpha)
			if err != nil {
				return false, err.Error()
			}
			var names []string
			for _, p := range st.Peer {
				names = append(names, p.DNSName)
				if p.DNSName == "beta.tail.test." && len(p.TailscaleIPs) > 0 {
					betaIP = p.TailscaleIPs[0].String()
					return true, ""
				}
			}
			return false, fmt.Sprint(names)
		})
	})
	if betaIP == "" {
		t.FailNow()
	}

	t.Run("tailscale-ping", func(t *testing.T) {
		out, err := alpha.Tailscale(ctx, "ping", "--c=20", "--timeout=5s", "beta")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(string(out), "pong from beta") {
			t.Errorf("ping output lacks a pong from beta:\n%s", out)
		}
	})

	t.Run("ping-through-embedded-derp", func(t *testing.T) {
		// With direct paths disabled the CLI reports the relayed pong and
		// then exits non-zero ("direct connection not established").
		testkit.WaitFor(t, ctx, "gamma to ping beta via DERP", func() (bool, string) {
			out, _ := gamma.Tailscale(ctx, "ping", "--c=3", "--timeout=5s", "beta")
			return strings.Contains(string(out), "pong from beta") && strings.Contains(string(out), "via DERP(tailplane)"), string(out)
		})
	})

	socks := func(n *tailscaled.Node) proxy.Dialer {
		d, err := proxy.SOCKS5("tcp", n.SOCKS5, nil, &net.Dialer{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	greetingVia := func(d proxy.Dialer, port int) (string, error) {
		c, err := d.Dial("tcp", fmt.Sprintf("beta.tail.test:%d", port))
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return bufio.NewReader(c).ReadString('\n')
	}
	greeting := func(port int) (string, error) { return greetingVia(socks(alpha), port) }

	for _, via := range []string{"alpha", "gamma"} {
		t.Run("tcp-through-socks5-of-"+via, func(t *testing.T) {
			d := socks(nodes[via])
			var line string
			testkit.WaitFor(t, ctx, "a TCP greeting from beta via "+via+"'s SOCKS5 proxy", func() (bool, string) {
				var err error
				line, err = greetingVia(d, allowedPort)
				if err != nil {
					return false, err.Error()
				}
				return true, ""
			})
			if line != "hello over the tailnet\n" {
				t.Errorf("got %q", line)
			}
		})
	}

	t.Run("policy-denied-port-refused", func(t *testing.T) {
		// The allowed port works (above), so the path is up: a denied
		// port must fail because beta's packet filter drops it.
		if line, err := greeting(deniedPort); err == nil {
			t.Errorf("connection to a port the policy denies succeeded: %q", line)
		}
	})
}
