package control

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/tailscaled"
	"github.com/tailplane/tailplane/internal/testkit"
	"golang.org/x/net/proxy"
)

// haSubnet is the subnet the HA routers of TestHASubnetRoutersTailscaled
// serve. A userspace-networking router dials a subnet destination from the
// host, but refuses loopback destinations (gVisor drops them, and 4via6
// refuses them too); a destination inside 100.64.0.0/10 that is no node's
// address it forwards to the host's loopback at the same port, as it does
// for its own address. So the subnet lies in 100.64.0.0/10, outside the
// tailnet's node range (haTailnetRange), and its service is a greeter on
// 127.0.0.1.
var (
	haSubnet       = netip.MustParsePrefix("100.127.0.0/24")
	haTailnetRange = netip.MustParsePrefix("100.64.0.0/16")
	haTarget       = netip.MustParseAddr("100.127.0.1")
)

// forwardsIn counts the connections to 127.0.0.1:port a router's log says
// it forwarded (TS_DEBUG_NETSTACK, verbosity 2).
func forwardsIn(n *tailscaled.Node, port int) int {
	return strings.Count(n.Log(), fmt.Sprintf("forwarding incoming connection to 127.0.0.1:%d", port))
}

// Two real tailscaled subnet routers serve one subnet and a client reaches
// a service behind it through the primary. Killed, the primary's subnet
// moves to the other router and the client's traffic with it; restarted,
// the old primary takes nothing back. Frozen (SIGSTOP: its stream stays
// up, it answers no pings), the primary is failed over by the health
// checks; thawed, it answers again and stays a standby.
func TestHASubnetRoutersTailscaled(t *testing.T) {
	bins := testkit.TailscaledBinaries(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const greeting = "hello from behind the subnet\n"
	port := testkit.GreetOnLoopback(t, greeting)
	tn := testTailnet()
	tn.Settings.IPv4 = haTailnetRange
	tn.Routes["tag:router"] = append(tn.Routes["tag:router"], haSubnet)
	ts := startServerWith(t, tn, "", func(c *Config) {
		c.RouterHealth = RouterHealth{Interval: 2 * time.Second, Misses: 2, RestartGrace: -1}
	})
	root := t.TempDir()
	start := func(name string) *tailscaled.Node {
		return testkit.StartTailscaled(t, ctx, bins, filepath.Join(root, name), "TS_DEBUG_NETSTACK=true", "TS_LOG_VERBOSITY=2")
	}
	up := func(n *tailscaled.Node, name string, args ...string) {
		t.Helper()
		args = append([]string{"up", "--login-server=" + ts.URL, "--hostname=" + name}, args...)
		if out, err := n.Tailscale(ctx, args...); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	routers := map[string]*tailscaled.Node{}
	for _, name := range []string{"r1", "r2"} { // r1 registers first
		routers[name] = start(name)
		up(routers[name], name, "--auth-key="+serverKey, "--advertise-tags=tag:router", "--advertise-routes="+haSubnet.String())
	}
	client := start("client")
	up(client, "client", "--auth-key="+aliceKey, "--accept-routes")
	socks, err := proxy.SOCKS5("tcp", client.SOCKS5, nil, &net.Dialer{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	greet := func() error {
		c, err := socks.Dial("tcp", netip.AddrPortFrom(haTarget, uint16(port)).String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && line != greeting {
			err = fmt.Errorf("greeted with %q", line)
		}
		return err
	}
	// reachVia waits until the client's connections to the subnet arrive
	// through router via (its log counts a new forward) and checks that
	// the other router forwarded none meanwhile.
	reachVia := func(when, via, other string) {
		t.Helper()
		before := forwardsIn(routers[other], port)
		testkit.WaitFor(t, ctx, when+": the client to reach the subnet through "+via, func() (bool, string) {
			n := forwardsIn(routers[via], port)
			if err := greet(); err != nil {
				return false, err.Error()
			}
			return forwardsIn(routers[via], port) > n, fmt.Sprintf("greeted, but %s forwarded nothing new", via)
		})
		for range 3 {
			if err := greet(); err != nil {
				t.Errorf("%s: the subnet through %s: %v", when, via, err)
			}
		}
		if got := forwardsIn(routers[other], port); got != before {
			t.Errorf("%s: %s forwarded %d connections, want none: the traffic goes through %s", when, other, got-before, via)
		}
	}
	waitElected := func(when, want string, wantOnline bool) {
		t.Helper()
		testkit.WaitFor(t, ctx, when+": "+want+" elected", func() (bool, string) {
			got, online, healthy := electedFor(ts, haSubnet)
			return got == want && online == wantOnline && healthy, fmt.Sprintf("%s is elected (online %v, healthy %v)", got, online, healthy)
		})
	}

	waitElected("both routers up", "r1", true)
	reachVia("both routers up", "r1", "r2")

	if err := routers["r1"].Kill(); err != nil {
		t.Fatal(err)
	}
	waitElected("r1 killed", "r2", true)
	reachVia("r1 killed", "r2", "r1")

	routers["r1"] = start("r1") // its state is kept: it logs in again by itself
	testkit.WaitFor(t, ctx, "the restarted r1 to have a map stream", func() (bool, string) {
		st := routerState(ts, "r1")
		return strings.Contains(st, "online true"), st
	})
	waitElected("r1 restarted", "r2", true)
	reachVia("r1 restarted", "r2", "r1")

	r2 := routers["r2"]
	if err := r2.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r2.Signal(syscall.SIGCONT) })
	testkit.WaitFor(t, ctx, "the frozen r2 to fail its health checks", func() (bool, string) {
		st := routerState(ts, "r2")
		return strings.Contains(st, "online true, unhealthy true"), st
	})
	waitElected("r2 frozen", "r1", true)
	reachVia("r2 frozen", "r1", "r2")

	if err := r2.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, ctx, "the thawed r2 to answer pings again", func() (bool, string) {
		st := routerState(ts, "r2")
		return strings.Contains(st, "unhealthy false"), st
	})
	waitElected("r2 thawed", "r1", true)
	reachVia("r2 thawed", "r1", "r2")
}
