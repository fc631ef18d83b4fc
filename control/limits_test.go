package control

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/util/zstdframe"
)

// read returns the next message, keep-alives included, or the error that
// ended the stream; unlike next it may be called from any goroutine.
func (s *mapStream) read() (*tailcfg.MapResponse, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(s.body, hdr[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(s.body, msg); err != nil {
		return nil, err
	}
	if raw, err := zstdframe.AppendDecode(nil, msg); err == nil {
		msg = raw
	}
	resp := new(tailcfg.MapResponse)
	if err := json.Unmarshal(msg, resp); err != nil {
		return nil, fmt.Errorf("decoding map frame: %w", err)
	}
	return resp, nil
}

// postCtx is post bounded by ctx: a request the server wrongly answers
// with an endless stream fails when ctx ends instead of hanging.
func (n *rawNode) postCtx(ctx context.Context, path string, body any) (int, []byte) {
	n.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		n.t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", "https://unused"+path, bytes.NewReader(b))
	res, err := n.c.Do(req)
	if err != nil {
		n.t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		n.t.Fatalf("POST %s: reading the answer: %v", path, err)
	}
	return res.StatusCode, out
}

// changedNames returns the MagicDNS labels of a message's changed peers.
func changedNames(m *tailcfg.MapResponse) []string {
	var out []string
	for _, p := range m.PeersChanged {
		out = append(out, strings.TrimSuffix(p.Name, ".tail.test."))
	}
	return out
}

// nextAbout returns the next message that mentions node id as a changed
// peer or a patch.
func (s *mapStream) nextAbout(id tailcfg.NodeID) *tailcfg.MapResponse {
	s.t.Helper()
	for {
		m := s.next()
		for _, p := range m.PeersChanged {
			if p.ID == id {
				return m
			}
		}
		for _, pc := range m.PeersChangedPatch {
			if pc.NodeID == id {
				return m
			}
		}
	}
}

func manyEndpoints(n int) []netip.AddrPort {
	eps := make([]netip.AddrPort, n)
	for i := range eps {
		eps[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), uint16(1000+i))
	}
	return eps
}

func manyRoutes(n int) []netip.Prefix {
	ps := make([]netip.Prefix, n)
	for i := range ps {
		ps[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
	}
	return ps
}

// hugeHostinfo makes hi ~20 KB of JSON.
func hugeHostinfo(hi *tailcfg.Hostinfo) { hi.DeviceModel = strings.Repeat("x", 20<<10) }

// TestOversizeRegisterRefused registers over Noise with an oversize
// hostinfo or too many advertised routes: each registration is refused
// with a message naming the limit, and nothing is stored or reaches a peer.
func TestOversizeRegisterRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServer(t, testTailnet(), "")
	a := newRawNode(t, ts)
	a.register(a.registerReq(aliceKey))
	sa := a.stream(ctx, a.mapReq(true))
	sa.next()

	registerTests := []struct {
		name   string
		mutate func(*tailcfg.Hostinfo)
		want   string
	}{
		{"oversize-hostinfo", hugeHostinfo, "hostinfo is 20"},
		{"too-many-routes", func(hi *tailcfg.Hostinfo) { hi.RoutableIPs = manyRoutes(513) }, "513 advertised routes (RoutableIPs), more than the 512 allowed"},
	}
	for _, tt := range registerTests {
		t.Run("register/"+tt.name, func(t *testing.T) {
			n := newRawNode(t, ts)
			req := n.registerReq(aliceKey)
			tt.mutate(req.Hostinfo)
			r := n.register(req)
			if !strings.Contains(r.Error, tt.want) || r.MachineAuthorized {
				t.Errorf("register: Error %q, MachineAuthorized %v; want a refusal containing %q", r.Error, r.MachineAuthorized, tt.want)
			}
		})
	}

	// The refused registrations stored nothing and a learns of b only.
	b := newRawNode(t, ts)
	b.register(b.registerReq(aliceKey))
	m := sa.next()
	if len(m.PeersChanged) != 1 || m.PeersChanged[0].Name != "raw-2.tail.test." {
		t.Fatalf("after b registered, a got PeersChanged %v; want only raw-2 (refused registrations must not be relayed)", changedNames(m))
	}
	if rows, err := ts.Store.Nodes(ctx); err != nil || len(rows) != 2 {
		t.Errorf("store holds %d nodes (%v), want 2: refused registrations must not be stored", len(rows), err)
	}
}

// streamingPeers starts a server with two of alice's nodes: a, whose map
// stream sa has seen b join, and b, whose node ID is bID.
func streamingPeers(t *testing.T, ctx context.Context) (ts *testServer, sa *mapStream, b *rawNode, bID tailcfg.NodeID) {
	t.Helper()
	ts = startServer(t, testTailnet(), "")
	a := newRawNode(t, ts)
	a.register(a.registerReq(aliceKey))
	sa = a.stream(ctx, a.mapReq(true))
	sa.next()
	b = newRawNode(t, ts)
	b.register(b.registerReq(aliceKey))
	m := sa.next()
	if len(m.PeersChanged) != 1 {
		t.Fatalf("after b registered, a got PeersChanged %v, want b", changedNames(m))
	}
	return ts, sa, b, m.PeersChanged[0].ID
}

// TestOversizeMapRequestRefused sends map requests with an oversize
// hostinfo, too many endpoints or too long lists over Noise: each gets
// HTTP 400 with a message naming the limit, and nothing of it is stored
// or reaches a peer.
func TestOversizeMapRequestRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts, sa, b, bID := streamingPeers(t, ctx)

	mapTests := []struct {
		name   string
		mutate func(*tailcfg.MapRequest)
		want   string
	}{
		{"oversize-hostinfo", func(r *tailcfg.MapRequest) { hugeHostinfo(r.Hostinfo) }, "tailplane: map: hostinfo is 20"},
		{"too-many-endpoints", func(r *tailcfg.MapRequest) { r.Endpoints = manyEndpoints(129) }, "tailplane: map: map request lists 129 endpoints, more than the 128 allowed"},
		{"too-many-routes", func(r *tailcfg.MapRequest) { r.Hostinfo.RoutableIPs = manyRoutes(600) }, "600 advertised routes"},
		{"too-many-services", func(r *tailcfg.MapRequest) {
			r.Hostinfo.Services = make([]tailcfg.Service, 129)
		}, "129 services, more than the 128 allowed"},
		{"oversize-hostinfo-streaming", func(r *tailcfg.MapRequest) { r.Stream, r.OmitPeers = true, false; hugeHostinfo(r.Hostinfo) }, "hostinfo is 20"},
	}
	for _, tt := range mapTests {
		t.Run("map/"+tt.name, func(t *testing.T) {
			req := b.mapReq(false, "192.0.2.66:1")
			tt.mutate(req)
			code, body := b.postCtx(ctx, "/machine/map", req)
			if code != 400 || !strings.Contains(string(body), tt.want) {
				t.Errorf("got HTTP %d %q, want 400 containing %q", code, body, tt.want)
			}
		})
	}

	// A valid update after the refused ones is the first a hears of b.
	if code, body := b.post("/machine/map", b.mapReq(false, "192.0.2.99:1")); code != 200 {
		t.Fatalf("valid update: HTTP %d %s", code, body)
	}
	m := sa.nextAbout(bID)
	var got []string
	for _, pc := range m.PeersChangedPatch {
		for _, e := range pc.Endpoints {
			got = append(got, e.String())
		}
	}
	if len(m.PeersChanged) != 0 || len(m.PeersChangedPatch) != 1 || fmt.Sprint(got) != "[192.0.2.99:1]" {
		t.Errorf("a's first message about b after the refused requests: PeersChanged %v, patch endpoints %v; want only a patch to [192.0.2.99:1]",
			changedNames(m), got)
	}
	rows, err := ts.Store.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if len(r.Hostinfo) > maxHostinfoBytes || strings.Contains(string(r.Hostinfo), "xxxx") {
			t.Errorf("node %d's stored hostinfo is %d bytes and holds refused data", r.ID, len(r.Hostinfo))
		}
	}
}

// TestEndpointBurstCoalesced has a node move its endpoint many times in a
// row while a peer reads its stream: the peer gets far fewer updates than
// the node sent, and the last endpoint arrives.
func TestEndpointBurstCoalesced(t *testing.T) {
	const burst = 20
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, sa, b, bID := streamingPeers(t, ctx)

	final := fmt.Sprintf("192.0.2.2:%d", burst)
	type result struct {
		updates int
		err     error
	}
	done := make(chan result, 1)
	go func() { // counts the messages about b until the final endpoint
		updates := 0
		for {
			m, err := sa.read()
			if err != nil {
				done <- result{updates, err}
				return
			}
			about, last := false, ""
			for _, pc := range m.PeersChangedPatch {
				if pc.NodeID == bID {
					about = true
					if len(pc.Endpoints) > 0 {
						last = pc.Endpoints[0].String()
					}
				}
			}
			for _, p := range m.PeersChanged {
				if p.ID == bID {
					about = true
					if len(p.Endpoints) > 0 {
						last = p.Endpoints[0].String()
					}
				}
			}
			if about {
				updates++
			}
			if last == final {
				done <- result{updates, nil}
				return
			}
		}
	}()
	for i := 1; i <= burst; i++ {
		if code, body := b.post("/machine/map", b.mapReq(false, fmt.Sprintf("192.0.2.2:%d", i))); code != 200 {
			t.Fatalf("update %d: HTTP %d %s", i, code, body)
		}
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("a's stream ended before b's final endpoint %s arrived: %v", final, r.err)
	}
	if r.updates > burst/2 {
		t.Errorf("a got %d messages about b for a burst of %d endpoint changes; want them coalesced (at most %d)", r.updates, burst, burst/2)
	}
}

// bigNetmapTailnet is testTailnet with enough DNS records that one
// uncompressed netmap (~9 MB) exceeds the client's HTTP/2 stream window
// (4 MB), so a client that does not read blocks the server's write.
func bigNetmapTailnet() *schema.Tailnet {
	tn := testTailnet()
	label := strings.Repeat("a", 60)
	for i := range 40000 {
		tn.DNS.Records = append(tn.DNS.Records, schema.DNSRecord{
			Name: fmt.Sprintf("r%d.%s.%s.%s.example", i, label, label, label), Type: "A",
			Value: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
		})
	}
	return tn
}

// openStuckStream registers n and opens a map stream that it never reads,
// asking for uncompressed messages: the server's first write blocks.
func openStuckStream(ctx context.Context, t *testing.T, ts *testServer, n *rawNode) *mapStream {
	t.Helper()
	n.register(n.registerReq(aliceKey))
	req := n.mapReq(true)
	req.Compress = ""
	return n.stream(ctx, req)
}

// TestStuckStreamEndsAtWriteDeadline opens a stream that is never read:
// the write that cannot finish ends the session at the write deadline.
// WaitPropagated, which waits for the stuck session, then returns, and the
// client sees its stream reset.
func TestStuckStreamEndsAtWriteDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tn := bigNetmapTailnet()
	ts := startServerWith(t, tn, "", func(c *Config) { c.Limits.WriteTimeout = time.Second })
	stuck := openStuckStream(ctx, t, ts, newRawNode(t, ts))
	if err := ts.SetConfig(ctx, tn); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := ts.WaitPropagated(wctx); err != nil {
		t.Fatalf("WaitPropagated: %v; the stuck session never ended (no write deadline?)", err)
	}
	var err error
	for err == nil {
		_, err = stuck.read()
	}
	if ctx.Err() != nil {
		t.Errorf("the stuck stream was not ended by the server: %v", err)
	}
}

// TestReplacedStuckStreamEnds replaces a stream whose client stopped
// reading (its write is blocked) with a new one from the same node: the
// old session ends at once, long before the (hour-long) write deadline,
// and the new stream works.
func TestReplacedStuckStreamEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tn := bigNetmapTailnet()
	ts := startServerWith(t, tn, "", func(c *Config) { c.Limits.WriteTimeout = time.Hour })
	n := newRawNode(t, ts)
	openStuckStream(ctx, t, ts, n)
	// The stuck session is one that this config must reach.
	if err := ts.SetConfig(ctx, tn); err != nil {
		t.Fatal(err)
	}
	s2 := n.stream(ctx, n.mapReq(true))
	if m := s2.next(); m.Node == nil {
		t.Fatalf("the replacing stream's first message lacks Node")
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := ts.WaitPropagated(wctx); err != nil {
		t.Fatalf("WaitPropagated: %v; the replaced session is still blocked writing", err)
	}
	// The new stream still gets updates.
	other := newRawNode(t, ts)
	other.register(other.registerReq(aliceKey))
	for m := s2.next(); len(m.PeersChanged) == 0; m = s2.next() {
	}
}

// TestMachineStreamLimit opens more streams from one machine key (each for
// its own node) than the limit allows: the oldest is closed, the others
// keep working.
func TestMachineStreamLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServerWith(t, testTailnet(), "", func(c *Config) { c.Limits.MaxStreamsPerMachine = 2 })
	mk := key.NewMachine()
	var streams []*mapStream
	for i := range 3 {
		n := (&rawNode{t: t, mk: mk, nk: key.NewNode(), dk: key.NewDisco()}).connect(ts)
		req := n.registerReq(aliceKey)
		req.Hostinfo.Hostname = fmt.Sprintf("m%d", i)
		if r := n.register(req); r.Error != "" {
			t.Fatal(r.Error)
		}
		s := n.stream(ctx, n.mapReq(true))
		s.next()
		streams = append(streams, s)
	}
	var err error
	for err == nil {
		_, err = streams[0].read()
	}
	if ctx.Err() != nil {
		t.Fatalf("the machine's oldest stream was not closed (read until the deadline: %v)", err)
	}
	other := newRawNode(t, ts)
	req := other.registerReq(aliceKey)
	req.Hostinfo.Hostname = "other"
	other.register(req)
	for i, s := range streams[1:] {
		for {
			m := s.next()
			if slices.Contains(changedNames(m), "other") { // with whatever else coalesced into the message
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("stream %d stopped getting updates", i+2)
			}
		}
	}
}

// TestClosedSessionDropsQueue: closing a session drops what it had queued
// and ignores later changes, so a session whose writer is still blocked
// holds no netmap data.
func TestClosedSessionDropsQueue(t *testing.T) {
	view := &tailcfg.Node{ID: 7, Name: "peer."}
	eps := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:1")}
	tests := []struct {
		name    string
		enqueue func(s *session)
	}{
		{"full", func(s *session) { s.enqueueFull() }},
		{"self", func(s *session) { s.enqueueSelf(view) }},
		{"changed", func(s *session) { s.enqueueChanged(view) }},
		{"patch", func(s *session) { s.enqueuePatch(&tailcfg.PeerChange{NodeID: 7, Endpoints: eps}, view) }},
		{"removed", func(s *session) { s.enqueueRemoved(7) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := newSession(1)
			tt.enqueue(before)
			before.close("test")
			after := newSession(1)
			after.close("test")
			tt.enqueue(after)
			for _, s := range []*session{before, after} {
				if d := s.take(); !d.empty() {
					t.Errorf("closed session still holds %+v", d)
				}
			}
		})
	}
}

// keysEqual compares the key and address types of map requests by value.
var keysEqual = cmp.Options{
	cmp.Comparer(func(a, b key.NodePublic) bool { return a == b }),
	cmp.Comparer(func(a, b key.DiscoPublic) bool { return a == b }),
	cmp.Comparer(func(a, b key.HardwareAttestationPublic) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

func TestMergeMapRequest(t *testing.T) {
	dk1, dk2 := key.NewDisco().Public(), key.NewDisco().Public()
	ni := &tailcfg.NetInfo{PreferredDERP: 900}
	eps := func(s ...string) []netip.AddrPort {
		var out []netip.AddrPort
		for _, e := range s {
			out = append(out, netip.MustParseAddrPort(e))
		}
		return out
	}
	tests := []struct {
		name          string
		older, newer  *tailcfg.MapRequest
		want          *tailcfg.MapRequest
		olderHostinfo *tailcfg.Hostinfo // older.Hostinfo must be unchanged
	}{
		{
			name:  "first",
			newer: &tailcfg.MapRequest{Version: 130, DiscoKey: dk1, Endpoints: eps("192.0.2.1:1"), Stream: true, Hostinfo: &tailcfg.Hostinfo{Hostname: "a"}},
			want:  &tailcfg.MapRequest{Version: 130, DiscoKey: dk1, Endpoints: eps("192.0.2.1:1"), Hostinfo: &tailcfg.Hostinfo{Hostname: "a"}},
		},
		{
			name:  "newer-wins",
			older: &tailcfg.MapRequest{Version: 130, DiscoKey: dk1, Endpoints: eps("192.0.2.1:1"), Hostinfo: &tailcfg.Hostinfo{Hostname: "a", NetInfo: ni}},
			newer: &tailcfg.MapRequest{Version: 131, DiscoKey: dk2, Endpoints: eps("192.0.2.2:2"), Hostinfo: &tailcfg.Hostinfo{Hostname: "b", NetInfo: &tailcfg.NetInfo{PreferredDERP: 1}}},
			want:  &tailcfg.MapRequest{Version: 131, DiscoKey: dk2, Endpoints: eps("192.0.2.2:2"), Hostinfo: &tailcfg.Hostinfo{Hostname: "b", NetInfo: &tailcfg.NetInfo{PreferredDERP: 1}}},
		},
		{
			name:  "unset-fields-kept",
			older: &tailcfg.MapRequest{Version: 130, DiscoKey: dk1, Endpoints: eps("192.0.2.1:1"), Hostinfo: &tailcfg.Hostinfo{Hostname: "a"}},
			newer: &tailcfg.MapRequest{Version: 130, Endpoints: eps("192.0.2.2:2")},
			want:  &tailcfg.MapRequest{Version: 130, DiscoKey: dk1, Endpoints: eps("192.0.2.2:2"), Hostinfo: &tailcfg.Hostinfo{Hostname: "a"}},
		},
		{
			name:  "empty-endpoints-win",
			older: &tailcfg.MapRequest{Version: 130, Endpoints: eps("192.0.2.1:1")},
			newer: &tailcfg.MapRequest{Version: 130},
			want:  &tailcfg.MapRequest{Version: 130},
		},
		{
			name:          "netinfo-kept",
			older:         &tailcfg.MapRequest{Version: 130, Hostinfo: &tailcfg.Hostinfo{Hostname: "a", NetInfo: ni}},
			newer:         &tailcfg.MapRequest{Version: 130, Hostinfo: &tailcfg.Hostinfo{Hostname: "b"}},
			want:          &tailcfg.MapRequest{Version: 130, Hostinfo: &tailcfg.Hostinfo{Hostname: "b", NetInfo: ni}},
			olderHostinfo: &tailcfg.Hostinfo{Hostname: "a", NetInfo: ni},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newerHostinfo := tt.newer.Hostinfo.Clone()
			got := mergeMapRequest(tt.older, tt.newer)
			if diff := cmp.Diff(tt.want, got, keysEqual); diff != "" {
				t.Errorf("merged request (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(newerHostinfo, tt.newer.Hostinfo, keysEqual); diff != "" {
				t.Errorf("newer's hostinfo was modified (-before +after):\n%s", diff)
			}
			if tt.olderHostinfo != nil {
				if diff := cmp.Diff(tt.olderHostinfo, tt.older.Hostinfo, keysEqual); diff != "" {
					t.Errorf("older's hostinfo was modified (-before +after):\n%s", diff)
				}
			}
		})
	}
}

// deadlineWriter is a ResponseWriter that records write deadlines set
// through an http.ResponseController.
type deadlineWriter struct {
	http.ResponseWriter
	set chan time.Time
}

func (w *deadlineWriter) SetWriteDeadline(t time.Time) error {
	w.set <- t
	return nil
}

// TestAbortOnClose: closing a session resets its stream's write deadline
// into the past, also for a session closed before abortOnClose; after
// stop, closing touches the stream no more.
func TestAbortOnClose(t *testing.T) {
	for _, tc := range []struct {
		name              string
		closeFirst, stopB bool
	}{
		{"closed while streaming", false, false},
		{"closed before", true, false},
		{"stopped, then closed", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &deadlineWriter{set: make(chan time.Time, 1)}
			sess := newSession(1)
			if tc.closeFirst {
				sess.close("replaced")
			}
			stop := abortOnClose(http.NewResponseController(w), sess)
			if tc.stopB {
				stop()
			}
			sess.close("replaced")
			select {
			case d := <-w.set:
				if tc.stopB {
					t.Errorf("a stopped abortOnClose set the deadline %v", d)
				} else if !d.Before(time.Now()) {
					t.Errorf("deadline %v, want one in the past", d)
				}
			case <-time.After(200 * time.Millisecond):
				if !tc.stopB {
					t.Error("closing the session set no write deadline")
				}
			}
			stop()
		})
	}
}
