package control

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/testkit"
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
	current, old := testkit.TailscaledBinaries(t, ""), testkit.TailscaledBinaries(t, oldestClient)
	allowedPort := testkit.GreetOnLoopback(t, "hello from the current client's host\n")
	run := startE2E(t, allowedPort, false)
	ctx := run.ctx
	if out, err := exec.CommandContext(ctx, old.Tailscale, "version").Output(); err != nil || !strings.HasPrefix(string(out), strings.TrimPrefix(oldestClient, "v")) {
		t.Fatalf("the compat build reports version %q (%v), want %s", out, err, oldestClient)
	}
	nodes := map[string]*tailscaled.Node{
		"old": run.join(t, old, "old"),
		"new": run.join(t, current, "new"),
	}

	for from, to := range map[string]string{"old": "new", "new": "old"} {
		testkit.WaitFor(t, ctx, from+" to ping "+to, func() (bool, string) {
			out, _ := nodes[from].Tailscale(ctx, "ping", "--c=3", "--timeout=5s", to)
			return strings.Contains(string(out), "pong from "+to), string(out)
		})
	}

	d, err := proxy.SOCKS5("tcp", nodes["old"].SOCKS5, nil, &net.Dialer{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, ctx, "TCP from the old client to the new one by MagicDNS name", func() (bool, string) {
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
