package control

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/netip"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// selfMap fetches n's netmap with a non-streaming, full map request.
func (n *rawNode) selfMap() *tailcfg.MapResponse {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := n.mapReq(false)
	req.OmitPeers = false
	return n.stream(ctx, req).next()
}

func TestKeyRotationKeepsIdentity(t *testing.T) {
	ts := startServer(t, testTailnet(), "")
	n := newRawNode(t, ts)
	n.register(n.registerReq(aliceKey))
	before := n.selfMap().Node

	oldKey := n.nk
	n.nk = key.NewNode()
	req := n.registerReq("")
	req.OldNodeKey = oldKey.Public()
	// A new node key is a new login (`tailscale up --force-reauth`): it
	// needs an auth key.
	if r := n.register(req); r.MachineAuthorized || !strings.Contains(r.Error, "auth keys only") {
		t.Fatalf("rotation without an auth key: %+v, want the auth-keys-only refusal", r)
	}
	req = n.registerReq(aliceKey)
	req.OldNodeKey = oldKey.Public()
	if r := n.register(req); r.Error != "" || !r.MachineAuthorized {
		t.Fatalf("rotation refused: %+v", r)
	}
	after := n.selfMap().Node
	if after.ID != before.ID || after.StableID != before.StableID || !slices.Equal(after.Addresses, before.Addresses) || after.Name != before.Name {
		t.Errorf("rotation changed identity: before %v %v %v, after %v %v %v", before.ID, before.Addresses, before.Name, after.ID, after.Addresses, after.Name)
	}
	if after.Key != n.nk.Public() {
		t.Errorf("node key = %v, want the new key", after.Key)
	}
	// The old key is gone.
	n2 := *n
	n2.nk = oldKey
	if code, body := n2.post("/machine/map", n2.mapReq(false)); code != 401 {
		t.Errorf("map with the rotated-away key: HTTP %d %s, want 401", code, body)
	}
}

func TestNodeKeyExpiry(t *testing.T) {
	tn := testTailnet()
	tn.Settings.NodeKeyExpiry = 24 * time.Hour
	clock := newTestClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	ts := startServerWith(t, tn, "", func(c *Config) { c.Now = clock.Now })

	user := newRawNode(t, ts)
	user.register(user.registerReq(aliceKey))
	if got, want := user.selfMap().Node.KeyExpiry, clock.Now().Add(24*time.Hour); !got.Equal(want) {
		t.Errorf("user node KeyExpiry = %v, want %v", got, want)
	}
	tagged := newRawNode(t, ts)
	tagged.register(tagged.registerReq(serverKey))
	if got := tagged.selfMap().Node.KeyExpiry; !got.IsZero() {
		t.Errorf("tagged node KeyExpiry = %v, want none", got)
	}

	clock.Advance(25 * time.Hour)
	r := user.register(user.registerReq(""))
	if !r.NodeKeyExpired || !strings.Contains(r.Error, "expired") {
		t.Errorf("refresh of an expired key: %+v, want NodeKeyExpired with a message", r)
	}
	before := user.selfMap().Node
	if !before.Expired {
		t.Errorf("expired node not marked Expired")
	}
	// Re-authenticating with a new key and an auth key keeps the node.
	old := user.nk
	user.nk = key.NewNode()
	req := user.registerReq(aliceKey)
	req.OldNodeKey = old.Public()
	if r := user.register(req); r.Error != "" {
		t.Fatalf("re-auth: %s", r.Error)
	}
	after := user.selfMap().Node
	if after.ID != before.ID || !slices.Equal(after.Addresses, before.Addresses) || after.Expired {
		t.Errorf("re-auth: got node %d %v expired=%v, want node %d %v not expired", after.ID, after.Addresses, after.Expired, before.ID, before.Addresses)
	}
}

func TestEphemeralNodeRemovedAfterInactivity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tn := testTailnet()
	tn.Settings.EphemeralTimeout = 500 * time.Millisecond
	ts := startServer(t, tn, "")
	watcher := newRawNode(t, ts)
	watcher.register(watcher.registerReq(aliceKey))
	sw := watcher.stream(ctx, watcher.mapReq(true))
	sw.next()

	eph := newRawNode(t, ts)
	if r := eph.register(eph.registerReq(ephemeralKy)); r.Error != "" {
		t.Fatal(r.Error)
	}
	m := sw.next()
	if len(m.PeersChanged) != 1 {
		t.Fatalf("watcher did not see the ephemeral node join: %+v", m)
	}
	id := m.PeersChanged[0].ID
	ectx, ecancel := context.WithCancel(ctx)
	eph.stream(ectx, eph.mapReq(true)).next()
	ecancel() // the ephemeral node goes away
	for {
		m = sw.next()
		if slices.Contains(m.PeersRemoved, id) {
			break
		}
	}
	nodes, err := ts.Store.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 {
		t.Errorf("store has %d nodes after the ephemeral node was reaped, want 1", len(nodes))
	}
}

func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	tn := testTailnet()
	ts := startServer(t, tn, dir)
	a := newRawNode(t, ts)
	a.register(a.registerReq(aliceKey))
	before := a.selfMap().Node
	oneShot := newRawNode(t, ts)
	oneShot.register(oneShot.registerReq(oneShotKey))
	ts.Close()
	ts.DERP.Close()
	ts.Store.Close()

	ts2 := startServer(t, tn, dir)
	a2 := (&rawNode{t: t, mk: a.mk, nk: a.nk, dk: a.dk}).connect(ts2)
	after := a2.selfMap().Node
	if after.ID != before.ID || !slices.Equal(after.Addresses, before.Addresses) || after.Name != before.Name {
		t.Errorf("after restart: %d %v %s, want %d %v %s", after.ID, after.Addresses, after.Name, before.ID, before.Addresses, before.Name)
	}
	b := newRawNode(t, ts2)
	b.register(b.registerReq(aliceKey))
	bn := b.selfMap().Node
	for _, p := range bn.Addresses {
		if slices.Contains(before.Addresses, p) {
			t.Errorf("new node got address %v of an existing node", p)
		}
	}
	c := newRawNode(t, ts2)
	if r := c.register(c.registerReq(oneShotKey)); !strings.Contains(r.Error, "already used") {
		t.Errorf("one-shot key after restart: %q, want already used", r.Error)
	}
}

func TestSetConfigPushesNetmaps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tn := testTailnet()
	ts := startServer(t, tn, "")
	a := newRawNode(t, ts)
	a.register(a.registerReq(aliceKey))
	s := a.stream(ctx, a.mapReq(true))
	if got := s.next().DNSConfig.Resolvers[0].Addr; got != "192.0.2.53" {
		t.Fatalf("resolver = %s", got)
	}

	tn2 := testTailnet()
	tn2.DNS.Nameservers = []netip.Addr{netip.MustParseAddr("192.0.2.54")}
	delete(tn2.AuthKeys, "alice")
	if err := ts.SetConfig(ctx, tn2); err != nil {
		t.Fatal(err)
	}
	m := s.next() // a delta: only the DNS config and the filter change
	if m.DNSConfig == nil || m.DNSConfig.Resolvers[0].Addr != "192.0.2.54" {
		t.Fatalf("after SetConfig: got %+v, want the new resolver", m)
	}
	b := newRawNode(t, ts)
	if r := b.register(b.registerReq(aliceKey)); !strings.Contains(r.Error, "not declared") {
		t.Errorf("registration with a removed key: %q, want not declared", r.Error)
	}
}

func TestLoginAfterLogoutKeepsNode(t *testing.T) {
	ts := startServer(t, testTailnet(), "")
	n := newRawNode(t, ts)
	n.register(n.registerReq(aliceKey))
	before := n.selfMap().Node

	n.logout()
	if code, _ := n.post("/machine/map", n.mapReq(false)); code != 401 {
		t.Errorf("map after logout: HTTP %d, want 401", code)
	}

	// The client forgets its node key on logout and logs in with a new one.
	n.nk = key.NewNode()
	if r := n.register(n.registerReq(aliceKey)); r.Error != "" {
		t.Fatal(r.Error)
	}
	after := n.selfMap().Node
	if after.ID != before.ID || !slices.Equal(after.Addresses, before.Addresses) || after.Name != before.Name {
		t.Errorf("after re-login: node %d %v %s, want %d %v %s", after.ID, after.Addresses, after.Name, before.ID, before.Addresses, before.Name)
	}

	// Logging in with a key for another owner makes a new node instead.
	n.logout()
	if code, _ := n.post("/machine/map", n.mapReq(false)); code != 401 {
		t.Errorf("map after the second logout: HTTP %d, want 401", code)
	}
	n.nk = key.NewNode()
	if r := n.register(n.registerReq(serverKey)); r.Error != "" {
		t.Fatal(r.Error)
	}
	if other := n.selfMap().Node; other.ID == before.ID {
		t.Errorf("a tagged login reused user node %d", before.ID)
	}
}

func TestEphemeralNodesSurviveRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tn := testTailnet() // ephemeralTimeout: 1h
	clock := newTestClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	withClock := func(c *Config) { c.Now = clock.Now }
	ts := startServerWith(t, tn, dir, withClock)
	eph := newRawNode(t, ts)
	eph.register(eph.registerReq(ephemeralKy))
	eph.selfMap()
	ts.Close()
	ts.DERP.Close()
	ts.Store.Close()

	// The server was down for two hours; the node's sessions were cut by
	// the restart, not by the node, so it gets a full timeout to come back.
	clock.Advance(2 * time.Hour)
	ts2 := startServerWith(t, tn, dir, withClock)
	reap := func() int {
		ts2.do(ctx, func(w *world) error { w.reapEphemeral(ctx, clock.Now()); return nil })
		nodes, err := ts2.Store.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(nodes)
	}
	if got := reap(); got != 1 {
		t.Fatalf("right after the restart %d nodes are left, want the ephemeral node kept", got)
	}
	clock.Advance(61 * time.Minute)
	if got := reap(); got != 0 {
		t.Errorf("an hour after the restart %d nodes are left, want the ephemeral node removed", got)
	}
}

// TestAddressRangeChange checks that a new IPv4 or IPv6 range (each on its
// own) is used for the next node, while existing nodes keep their addresses.
func TestAddressRangeChange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*schema.Tailnet)
		want   netip.Prefix // the next node's address in the changed family
	}{
		{"ipv4-only", func(tn *schema.Tailnet) { tn.Settings.IPv4 = netip.MustParsePrefix("100.96.0.0/16") }, netip.MustParsePrefix("100.96.0.0/16")},
		{"ipv6-only", func(tn *schema.Tailnet) { tn.Settings.IPv6 = netip.MustParsePrefix("fd7a:115c:a1e0:ab12::/64") }, netip.MustParsePrefix("fd7a:115c:a1e0:ab12::/64")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ts := startServer(t, testTailnet(), "")
			first := newRawNode(t, ts)
			first.register(first.registerReq(aliceKey))
			before := first.selfMap().Node.Addresses
			tn := testTailnet()
			tc.change(tn)
			if err := ts.SetConfig(ctx, tn); err != nil {
				t.Fatal(err)
			}
			second := newRawNode(t, ts)
			second.register(second.registerReq(aliceKey))
			got := second.selfMap().Node.Addresses
			if !slices.ContainsFunc(got, func(p netip.Prefix) bool { return tc.want.Contains(p.Addr()) }) {
				t.Errorf("new node's addresses %v: none in the new range %v", got, tc.want)
			}
			if after := first.selfMap().Node.Addresses; !slices.Equal(after, before) {
				t.Errorf("existing node's addresses changed from %v to %v", before, after)
			}
		})
	}
}

// TestCloseWaitsForConnections: Close ends every Noise connection and
// returns only once the goroutines serving them and their requests (here
// map streams) have; a connection upgraded after Close is closed at once.
func TestCloseWaitsForConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServer(t, testTailnet(), "")
	var streams []*mapStream
	for range 3 {
		n := newRawNode(t, ts)
		n.register(n.registerReq(aliceKey))
		s := n.stream(ctx, n.mapReq(true))
		s.next()
		streams = append(streams, s)
	}
	// A request whose handler takes a while to end once its connection
	// is gone.
	started, finished := make(chan struct{}), make(chan struct{})
	ts.noiseMux.HandleFunc("POST /test/slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		time.Sleep(200 * time.Millisecond)
		close(finished)
	})
	slow := newRawNode(t, ts)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", "https://unused/test/slow", strings.NewReader("{}"))
		if res, err := slow.c.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	<-started
	ts.connMu.Lock()
	open := len(ts.conns)
	ts.connMu.Unlock()
	if open != 4 {
		t.Fatalf("%d Noise connections open, want 4", open)
	}
	ts.Close()
	select {
	case <-finished:
	default:
		t.Error("Close returned while a request's handler still ran")
	}
	var stacks bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&stacks, 2)
	for _, fn := range []string{"serveNoise", "serveMap"} {
		if n := strings.Count(stacks.String(), "control.(*Server)."+fn+"("); n > 0 {
			t.Errorf("Close returned with %d goroutines still in %s", n, fn)
		}
	}
	for i, s := range streams { // what was sent before Close, then the end
		ended := false
		for range 10 {
			var hdr [4]byte
			if _, err := io.ReadFull(s.body, hdr[:]); err != nil {
				ended = true
				break
			}
			if _, err := io.CopyN(io.Discard, s.body, int64(binary.LittleEndian.Uint32(hdr[:]))); err != nil {
				ended = true
				break
			}
		}
		if !ended {
			t.Errorf("stream %d goes on after Close", i)
		}
	}
	late := newRawNode(t, ts) // dials after Close
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	req, _ := http.NewRequestWithContext(lctx, "POST", "https://unused/machine/register", strings.NewReader("{}"))
	if res, err := late.c.Do(req); err == nil {
		res.Body.Close()
		t.Errorf("a connection upgraded after Close was served: HTTP %d", res.StatusCode)
	}
}
