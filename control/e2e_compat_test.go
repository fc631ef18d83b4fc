package control

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/tailplane/tailplane/internal/tailscaled"
)

// oldestClient is the oldest Tailscale release tailplane supports; it is
// pinned by the module in internal/tailscaled/compat/<version>.
const oldestClient = "v1.80.3"

// TestEndToEndOldestClient joins a tailscaled of the oldest supported
// release and a current one to `tailplane serve`: they see each other,
// ping, and carry TCP, so the protocol tailplane speaks still works for
// clients at MinCapabilityVersion.
func TestEndToEndOldestClient(t *testing.T) {
	bctx, bcancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer bcancel()
	current, err := tailscaled.Build(bctx)
	if err != nil {
		t.Fatal(err)
	}
	old, err := tailscaled.BuildCompat(bctx, oldestClient)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := t.TempDir()
	bin := buildTailplane(t, ctx, root)
	configDir := filepath.Join(root, "config")
	os.MkdirAll(configDir, 0o755)
	allowedPort := greeter(t, "hello from the current client's host")
	if err := os.WriteFile(filepath.Join(configDir, "tailnet.hujson"), []byte(e2eConfig(allowedPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	url := startServeBinary(t, ctx, bin, configDir, filepath.Join(root, "state"), nil)
	if out, err := exec.CommandContext(ctx, old.Tailscale, "version").Output(); err != nil || !strings.HasPrefix(string(out), strings.TrimPrefix(oldestClient, "v")) {
		t.Fatalf("the compat build reports version %q (%v), want %s", out, err, oldestClient)
	}

	nodes := map[string]*tailscaled.Node{}
	for name, bins := range map[string]*tailscaled.Binaries{"old": old, "new": current} {
		n, err := bins.Start(ctx, filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s (%s) tailscaled log (tail):\n%s", name, bins.Version, tail(n.Log(), 60))
			}
			n.Close()
		})
		if out, err := n.Tailscale(ctx, "up", "--login-server="+url, "--auth-key="+aliceKey, "--hostname="+name); err != nil {
			t.Fatalf("%s (%s): tailscale up: %v\n%s", name, bins.Version, err, out)
		}
		nodes[name] = n
	}

	for from, to := range map[string]string{"old": "new", "new": "old"} {
		waitFor(t, ctx, from+" to ping "+to, func() (bool, string) {
			out, _ := nodes[from].Tailscale(ctx, "ping", "--c=3", "--timeout=5s", to)
			return strings.Contains(string(out), "pong from "+to), string(out)
		})
	}

	d, err := proxy.SOCKS5("tcp", nodes["old"].SOCKS5, nil, &net.Dialer{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "TCP from the old client to the new one by MagicDNS name", func() (bool, string) {
		c, err := d.Dial("tcp", fmt.Sprintf("new.tail.test:%d", allowedPort))
		if err != nil {
			return false, err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		return strings.HasPrefix(string(buf[:n]), "hello from"), string(buf[:n])
	})
}
