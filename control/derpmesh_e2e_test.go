package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/tailscaled"
	"github.com/tailplane/tailplane/internal/testkit"
	"tailscale.com/tailcfg"
)

// forwardedOut is how many packets d's relay forwarded to other relays of
// the mesh.
func forwardedOut(t *testing.T, d *DERP) int64 {
	t.Helper()
	var vars struct {
		Out int64 `json:"packets_forwarded_out"`
	}
	if err := json.Unmarshal([]byte(d.srv.ExpVar(false).String()), &vars); err != nil {
		t.Fatalf("reading the relay's counters: %v", err)
	}
	return vars.Out
}

// Two real tailscaled nodes of one tailnet, homed on two different meshed
// relays, ping each other and carry TCP through the mesh. Each node is
// pinned to its relay with tailscaled's TS_DEBUG_USE_DERP_ADDR (a map of
// one relay, region 999, on port 443, verified against the system roots:
// SSL_CERT_FILE holds the relays' self-signed certificates), so neither
// relay has both nodes and every packet crosses the mesh.
// TS_DEBUG_ALWAYS_USE_DERP keeps direct paths away. Port 443 on a
// loopback address needs root (or CAP_NET_BIND_SERVICE), as CI has.
func TestRelayMeshTailscaled(t *testing.T) {
	bins := testkit.TailscaledBinaries(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	port := testkit.GreetOnLoopback(t, "hello across the relay mesh\n")
	ts := startServer(t, testTailnet(), "")
	meshKey := newMeshKey(t)
	addrs := map[string]string{"alpha": "127.77.14.1", "beta": "127.77.14.2"}
	relays := map[string]*meshRelay{}
	var certs []byte
	for _, name := range []string{"alpha", "beta"} {
		dir := t.TempDir()
		if ln, err := net.Listen("tcp", addrs[name]+":443"); err != nil {
			t.Fatalf("relay for %s: %v (binding port 443 needs root or CAP_NET_BIND_SERVICE)", name, err)
		} else {
			ln.Close()
		}
		relays[name] = startMeshRelay(t, ts, addrs[name]+":443", dir, meshKey)
		pem, err := os.ReadFile(filepath.Join(dir, "derp-cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, pem...)
	}
	for _, r := range relays {
		r.mesh.SetPeers([]*tailcfg.DERPNode{relays["alpha"].node(), relays["beta"].node()})
	}
	roots := filepath.Join(t.TempDir(), "relays.pem")
	if err := os.WriteFile(roots, certs, 0o644); err != nil {
		t.Fatal(err)
	}

	root := t.TempDir()
	nodes := map[string]*tailscaled.Node{}
	for _, name := range []string{"alpha", "beta"} {
		n := testkit.StartTailscaled(t, ctx, bins, filepath.Join(root, name),
			"TS_DEBUG_USE_DERP_ADDR="+addrs[name], "TS_DEBUG_ALWAYS_USE_DERP=true", "SSL_CERT_FILE="+roots)
		if out, err := n.Tailscale(ctx, "up", "--login-server="+ts.URL, "--auth-key="+aliceKey, "--hostname="+name); err != nil {
			t.Fatalf("%s: tailscale up: %v\n%s", name, err, out)
		}
		nodes[name] = n
	}
	alpha := nodes["alpha"]

	testkit.WaitFor(t, ctx, "alpha to ping beta through the relays", func() (bool, string) {
		out, _ := alpha.Tailscale(ctx, "ping", "--c=3", "--timeout=5s", "beta")
		return strings.Contains(string(out), "pong from beta") && strings.Contains(string(out), "via DERP"), string(out)
	})

	testkit.WaitFor(t, ctx, "alpha to read beta's greeting through the relays", func() (bool, string) {
		got, err := testkit.ReadGreetingVia(ctx, alpha, fmt.Sprintf("beta.tail.test:%d", port))
		return got == "hello across the relay mesh\n", fmt.Sprintf("%q, %v", got, err)
	})
	for name, r := range relays {
		if n := forwardedOut(t, r.d); n == 0 {
			t.Errorf("%s's relay forwarded no packet to the other relay; the traffic did not cross the mesh", name)
		}
	}
}
