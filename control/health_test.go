package control

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/policy"
	"tailscale.com/tailcfg"
)

// pingAnswerer reads a router's map stream in the background and, while
// answering is set, answers each PingRequest as tailscaled does: a HEAD
// request to its URL over the node's Noise connection.
type pingAnswerer struct {
	answering atomic.Bool
	answered  atomic.Int64 // pings answered so far
	ignored   atomic.Int64 // pings received while not answering
}

func answerPings(ctx context.Context, n *rawNode, s *mapStream) *pingAnswerer {
	a := new(pingAnswerer)
	a.answering.Store(true)
	go func() {
		for ctx.Err() == nil {
			m, err := s.read()
			if err != nil {
				return
			}
			pr := m.PingRequest
			if pr == nil {
				continue
			}
			if !a.answering.Load() {
				a.ignored.Add(1)
				continue
			}
			if !pr.URLIsNoise {
				continue // the server must send Noise pings; the test sees no answers
			}
			req, _ := http.NewRequestWithContext(ctx, "HEAD", pr.URL, nil)
			if res, err := n.c.Do(req); err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					a.answered.Add(1)
				}
			}
		}
	}()
	return a
}

// routerMapReq is a streaming map request of a tag:router node that
// advertises subnet.
func routerMapReq(n *rawNode, subnet netip.Prefix) *tailcfg.MapRequest {
	req := n.mapReq(true)
	req.Hostinfo.RequestTags = []string{"tag:router"}
	req.Hostinfo.RoutableIPs = []netip.Prefix{subnet}
	return req
}

// electedFor returns the name of the router the server elected for subnet,
// and whether that router has a map stream and passes its health checks.
func electedFor(ts *testServer, subnet netip.Prefix) (name string, online, healthy bool) {
	ts.do(context.Background(), func(w *world) error {
		if n := w.nodes[w.res.Primaries()[policy.PrimaryKey{Prefix: subnet}]]; n != nil {
			name, online, healthy = n.givenName, n.online, !n.health.unhealthy
		}
		return nil
	})
	return name, online, healthy
}

// routerState describes the named node's stream and health.
func routerState(ts *testServer, name string) string {
	var s string
	ts.do(context.Background(), func(w *world) error {
		if n := w.names[name]; n != nil {
			s = fmt.Sprintf("online %v, unhealthy %v, %d misses", n.online, n.health.unhealthy, n.health.misses)
		}
		return nil
	})
	return s
}

// A primary router whose stream stays up but which stops answering pings
// is failed over; once it answers again it is healthy but takes nothing
// back, and it is a candidate again when the other router fails.
func TestRouterHealthFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ts := startServerWith(t, testTailnet(), "", func(c *Config) {
		c.RouterHealth = RouterHealth{Interval: 500 * time.Millisecond, Misses: 2, RestartGrace: -1}
	})
	subnet := netip.MustParsePrefix("192.0.2.0/24")
	answerers := map[string]*pingAnswerer{}
	for _, host := range []string{"r1", "r2"} {
		r := registerRouter(t, ts, host, subnet)
		s := r.stream(ctx, routerMapReq(r, subnet))
		s.next()
		answerers[host] = answerPings(ctx, r, s)
	}
	alice := newRawNode(t, ts)
	alice.register(alice.registerReq(aliceKey))

	waitElected := func(when, want string) {
		t.Helper()
		testkit.WaitFor(t, ctx, when+": "+want+" elected", func() (bool, string) {
			got, _, _ := electedFor(ts, subnet)
			return got == want, fmt.Sprintf("%s is elected; r1 %s; r2 %s", got, routerState(ts, "r1"), routerState(ts, "r2"))
		})
		wantPrimary(t, when, ts, alice, subnet, want)
	}
	waitHealthy := func(name string, want bool) {
		t.Helper()
		testkit.WaitFor(t, ctx, fmt.Sprintf("%s healthy=%v", name, want), func() (bool, string) {
			st := routerState(ts, name)
			return strings.Contains(st, fmt.Sprintf("unhealthy %v", !want)), st
		})
	}

	waitHealthy("r1", true)
	testkit.WaitFor(t, ctx, "both routers to answer a ping", func() (bool, string) {
		a1, a2 := answerers["r1"].answered.Load(), answerers["r2"].answered.Load()
		return a1 > 0 && a2 > 0, fmt.Sprintf("r1 answered %d, r2 %d", a1, a2)
	})
	waitElected("both routers healthy", "r1")

	answerers["r1"].answering.Store(false)
	waitHealthy("r1", false)
	waitElected("r1 stopped answering", "r2")
	if st := routerState(ts, "r1"); !strings.Contains(st, "online true") {
		t.Errorf("r1 failed over for its pings: %s, want its stream still up", st)
	}

	answerers["r1"].answering.Store(true)
	waitHealthy("r1", true)
	waitElected("r1 answers again", "r2") // sticky: no take-back

	answerers["r2"].answering.Store(false)
	waitHealthy("r2", false)
	waitElected("r2 stopped answering", "r1")
	if answerers["r1"].ignored.Load() == 0 || answerers["r2"].ignored.Load() == 0 {
		t.Errorf("pings ignored: r1 %d, r2 %d; want some for each", answerers["r1"].ignored.Load(), answerers["r2"].ignored.Load())
	}
}

// Only the machine a ping was sent to can answer it, and only once.
func TestPingAnswerIsChecked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServerWith(t, testTailnet(), "", func(c *Config) {
		c.RouterHealth = RouterHealth{Interval: -1, RestartGrace: -1} // pings issued by hand below
	})
	subnet := netip.MustParsePrefix("192.0.2.0/24")
	r := registerRouter(t, ts, "r1", subnet)
	s := r.stream(ctx, routerMapReq(r, subnet))
	s.next()
	other := newRawNode(t, ts)
	other.register(other.registerReq(aliceKey))

	var pr *tailcfg.PingRequest
	ts.do(ctx, func(w *world) error {
		w.sendPing(w.names["r1"])
		return nil
	})
	for pr == nil {
		pr = s.next().PingRequest
	}
	if !pr.URLIsNoise || pr.Types != "" || !strings.HasPrefix(pr.URL, "https://unused/machine/ping/") {
		t.Fatalf("ping request %+v: want a HEAD ping over Noise to the host the client named", pr)
	}
	head := func(n *rawNode, url string) int {
		req, _ := http.NewRequestWithContext(ctx, "HEAD", url, nil)
		res, err := n.c.Do(req)
		if err != nil {
			t.Fatalf("HEAD %s: %v", url, err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	tests := []struct {
		name string
		from *rawNode
		url  string
		want int
	}{
		{"unknown token", r, "https://unused/machine/ping/0123456789abcdef0123456789abcdef", http.StatusNotFound},
		{"another machine", other, pr.URL, http.StatusNotFound},
		{"the router", r, pr.URL, http.StatusOK},
		{"the router again", r, pr.URL, http.StatusNotFound},
	}
	for _, tt := range tests {
		if got := head(tt.from, tt.url); got != tt.want {
			t.Errorf("%s: HEAD answered %d, want %d", tt.name, got, tt.want)
		}
	}

}

// A router that reconnects while unhealthy stays unhealthy, is pinged at
// once on its new stream, and is healthy as soon as it answers.
func TestUnhealthyRouterPingedOnReconnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServerWith(t, testTailnet(), "", func(c *Config) {
		c.RouterHealth = RouterHealth{Interval: time.Hour, RestartGrace: -1} // no periodic ping during the test
	})
	subnet := netip.MustParsePrefix("192.0.2.0/24")
	r := registerRouter(t, ts, "r1", subnet)
	sctx, gone := context.WithCancel(ctx)
	r.stream(sctx, routerMapReq(r, subnet)).next()
	ts.do(ctx, func(w *world) error {
		w.names["r1"].health.unhealthy = true // as checkRouters leaves it
		return nil
	})
	gone()
	testkit.WaitFor(t, ctx, "r1's stream to end", func() (bool, string) {
		st := routerState(ts, "r1")
		return strings.Contains(st, "online false"), st
	})

	s := r.stream(ctx, routerMapReq(r, subnet))
	s.next()
	if st := routerState(ts, "r1"); !strings.Contains(st, "unhealthy true") {
		t.Errorf("after reconnecting: %s, want r1 still unhealthy until it answers", st)
	}
	a := answerPings(ctx, r, s)
	testkit.WaitFor(t, ctx, "r1 to answer the ping its new stream brought", func() (bool, string) {
		st := routerState(ts, "r1")
		return a.answered.Load() == 1 && strings.Contains(st, "unhealthy false"), fmt.Sprintf("%d answered; %s", a.answered.Load(), st)
	})
}
