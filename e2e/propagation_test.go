package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/pipeline"
	"tailscale.com/control/controlclient"
	"tailscale.com/health"
	"tailscale.com/types/netmap"
	"tailscale.com/util/eventbus"
)

// markerFiles is a tailnet whose DNS record "rev.tail.test" carries
// marker, so a client's netmap shows which commit it holds.
func markerFiles(marker netip.Addr) map[string]string {
	return map[string]string{"tailnet.hujson": `{
	"tailnet": {"name": "bench", "domain": "tail.test"},
	"users": {"alice@example.com": {}},
	"dns": {"magicDNS": true, "records": [{"name": "rev.tail.test", "type": "A", "value": "` + marker.String() + `"}]},
	"authKeys": {"fleet": {"user": "alice@example.com", "reusable": true, "secretHash": "` + testkit.SecretHash(aliceKey) + `"}},
	"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}
`}
}

// client is a real Tailscale control client (controlclient.Direct, as
// tailscaled uses) holding a map poll open, reduced to what the benchmark
// watches: the marker in its latest netmap.
type client struct {
	d      *controlclient.Direct
	mu     sync.Mutex // guards marker and changed
	marker netip.Addr
	change chan struct{} // size 1: pokes the waiter
}

func (c *client) UpdateFullNetmap(nm *netmap.NetworkMap) {
	var m netip.Addr
	for _, r := range nm.DNS.ExtraRecords {
		if r.Name == "rev.tail.test." || r.Name == "rev.tail.test" {
			m, _ = netip.ParseAddr(r.Value)
		}
	}
	c.mu.Lock()
	c.marker = m
	c.mu.Unlock()
	select {
	case c.change <- struct{}{}:
	default:
	}
}

func (c *client) has(m netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.marker == m
}

// startClients registers n control clients and starts their map polls.
func startClients(tb testing.TB, ctx context.Context, url string, n int) []*client {
	tb.Helper()
	bus := eventbus.New()
	tb.Cleanup(bus.Close)
	ht := health.NewTracker(bus)
	clients := make([]*client, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range clients {
		d := newDirect(tb, url, aliceKey, fmt.Sprintf("bench%03d", i), bus, ht)
		c := &client{d: d, change: make(chan struct{}, 1)}
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := d.TryLogin(ctx, controlclient.LoginDefault); err != nil {
				errs <- fmt.Errorf("client %d: login: %w", i, err)
				return
			}
			go d.PollNetMap(ctx, c)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return clients
}

// waitMarker waits until every client holds marker.
func waitMarker(tb testing.TB, clients []*client, marker netip.Addr) {
	deadline := time.After(waitTimeout)
	for _, c := range clients {
		for !c.has(marker) {
			select {
			case <-c.change:
			case <-deadline:
				tb.Fatalf("timed out waiting for every client to hold marker %v", marker)
			}
		}
	}
}

// BenchmarkPropagation100 measures the time from a push webhook (Pipeline.Sync)
// for a new commit to every one of 100 connected clients holding the
// netmap of that commit: fetch (over file:// or smart HTTP), load, validate, compile, test,
// diff, apply in SQLite, and 100 full netmaps of 100 peers each, received
// and decoded by real control clients. The server's own figure (until
// control says every session was sent the netmap) is reported as
// server-s/op.
func BenchmarkPropagation100(b *testing.B) {
	b.Run("file", func(b *testing.B) { benchPropagation(b, false) })
	b.Run("smart-http", func(b *testing.B) { benchPropagation(b, true) })
}

// benchPropagation runs BenchmarkPropagation100 against a file:// remote,
// or one served by git-http-backend.
func benchPropagation(b *testing.B, overHTTP bool) {
	const nodes = 100
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newRemote(b)
	url := r.fileURL()
	if overHTTP {
		url = testkit.StartGitServer(b, testkit.GitServerConfig{Root: r.root}).URL("tailnet.git")
	}
	marker := netip.MustParseAddr("192.0.2.1")
	first := r.commit("bench 0", markerFiles(marker))
	srv := startServer(b, serverOpts{stateDir: b.TempDir(), repoURL: url})
	benchWaitApplied(b, srv, first)
	clients := startClients(b, ctx, srv.URL, nodes)
	waitMarker(b, clients, marker)

	var server, worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		marker = netip.AddrFrom4([4]byte{192, 0, 2, byte(2 + i%250)})
		commit := r.commit(fmt.Sprintf("bench %d", i+1), markerFiles(marker))
		b.StartTimer()
		start := time.Now()
		srv.Loop.Sync()
		waitMarker(b, clients, marker)
		d := time.Since(start)
		b.StopTimer()
		worst = max(worst, d)
		benchWaitApplied(b, srv, commit)
		server += srv.Loop.Status().Metrics.Propagation
		b.StartTimer()
	}
	b.ReportMetric(server.Seconds()/float64(b.N), "server-s/op")
	b.ReportMetric(worst.Seconds(), "worst-s")
	if on, _, _ := srv.Ctrl.NodeCounts(ctx); on != nodes {
		b.Errorf("%d clients online at the end, want %d", on, nodes)
	}
}

// benchWaitApplied waits until the server's pipeline reports commit
// applied. It does not Sync: the benchmark already did, and a Sync now
// would count as the trigger of the next commit, inflating server-s/op.
func benchWaitApplied(tb testing.TB, s *server, commit string) {
	tb.Helper()
	s.waitStatus(tb, "commit "+commit+" to be applied", func(st pipeline.Status) bool {
		return st.Applied != nil && st.Applied.Commit == commit && st.Attempted != nil && st.Attempted.OK
	})
}
