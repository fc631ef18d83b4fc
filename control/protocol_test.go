package control

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tailscale.com/control/ts2021"
	"tailscale.com/net/netmon"
	"tailscale.com/net/tsdial"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/util/zstdframe"
)

// rawNode is a hand-driven client: a machine key, a node key and a Noise
// connection to the server, for protocol-level tests.
type rawNode struct {
	t  testing.TB
	mk key.MachinePrivate
	nk key.NodePrivate
	dk key.DiscoPrivate
	c  *ts2021.Client
}

func newRawNode(t testing.TB, ts *testServer) *rawNode {
	t.Helper()
	return (&rawNode{t: t, mk: key.NewMachine(), nk: key.NewNode(), dk: key.NewDisco()}).connect(ts)
}

// connect (re)opens n's Noise client to ts.
func (n *rawNode) connect(ts *testServer) *rawNode {
	t, mk := n.t, n.mk
	c, err := ts2021.NewClient(ts2021.ClientOpts{
		ServerURL:    ts.URL,
		PrivKey:      mk,
		ServerPubKey: ts.noiseKey.Public(),
		Dialer:       tsdial.NewDialer(netmon.NewStatic()),
		Logf:         func(string, ...any) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	n.c = c
	return n
}

// post sends body (raw bytes, or a value to JSON-encode) and returns the
// status and response body.
func (n *rawNode) post(path string, body any) (int, []byte) {
	n.t.Helper()
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			n.t.Fatal(err)
		}
	}
	req, _ := http.NewRequest("POST", "https://unused"+path, bytes.NewReader(b))
	res, err := n.c.Do(req)
	if err != nil {
		n.t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, out
}

func (n *rawNode) registerReq(authKey string) *tailcfg.RegisterRequest {
	req := &tailcfg.RegisterRequest{
		Version:  tailcfg.CurrentCapabilityVersion,
		NodeKey:  n.nk.Public(),
		Hostinfo: &tailcfg.Hostinfo{Hostname: "raw", BackendLogID: "test"},
	}
	if authKey != "" {
		req.Auth = &tailcfg.RegisterResponseAuth{AuthKey: authKey}
	}
	return req
}

func (n *rawNode) register(req *tailcfg.RegisterRequest) *tailcfg.RegisterResponse {
	n.t.Helper()
	code, body := n.post("/machine/register", req)
	if code != 200 {
		n.t.Fatalf("register: HTTP %d: %s", code, body)
	}
	resp := new(tailcfg.RegisterResponse)
	if err := json.Unmarshal(body, resp); err != nil {
		n.t.Fatalf("register response %q: %v", body, err)
	}
	return resp
}

// logout logs n out the way `tailscale logout` does: a register request
// with an expiry in the past.
func (n *rawNode) logout() *tailcfg.RegisterResponse {
	n.t.Helper()
	req := n.registerReq("")
	req.Expiry = time.Unix(123, 0)
	return n.register(req)
}

func (n *rawNode) mapReq(stream bool, eps ...string) *tailcfg.MapRequest {
	req := &tailcfg.MapRequest{
		Version:   tailcfg.CurrentCapabilityVersion,
		NodeKey:   n.nk.Public(),
		DiscoKey:  n.dk.Public(),
		Stream:    stream,
		OmitPeers: !stream,
		Compress:  "zstd",
		Hostinfo:  &tailcfg.Hostinfo{Hostname: "raw", BackendLogID: "test"},
	}
	for _, e := range eps {
		req.Endpoints = append(req.Endpoints, netip.MustParseAddrPort(e))
	}
	return req
}

// mapStream is an open streaming map response.
type mapStream struct {
	t    testing.TB
	body io.ReadCloser
	held netmapModel // what the client holds after the messages read so far; see held()
}

func (n *rawNode) stream(ctx context.Context, req *tailcfg.MapRequest) *mapStream {
	n.t.Helper()
	b, _ := json.Marshal(req)
	hreq, _ := http.NewRequestWithContext(ctx, "POST", "https://unused/machine/map", bytes.NewReader(b))
	res, err := n.c.Do(hreq)
	if err != nil {
		n.t.Fatalf("map: %v", err)
	}
	if res.StatusCode != 200 {
		out, _ := io.ReadAll(res.Body)
		n.t.Fatalf("map: HTTP %d: %s", res.StatusCode, out)
	}
	s := &mapStream{t: n.t, body: res.Body}
	n.t.Cleanup(func() { res.Body.Close() })
	return s
}

// next returns the next non-keep-alive message.
func (s *mapStream) next() *tailcfg.MapResponse {
	s.t.Helper()
	for {
		if resp := s.nextAny(); !resp.KeepAlive {
			return resp
		}
	}
}

// nextAny returns the next message, keep-alives included.
func (s *mapStream) nextAny() *tailcfg.MapResponse {
	s.t.Helper()
	var hdr [4]byte
	if _, err := io.ReadFull(s.body, hdr[:]); err != nil {
		s.t.Fatalf("reading map frame: %v", err)
	}
	msg := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(s.body, msg); err != nil {
		s.t.Fatalf("reading map frame: %v", err)
	}
	raw, err := zstdframe.AppendDecode(nil, msg)
	if err != nil {
		s.t.Fatalf("decompressing map frame: %v", err)
	}
	resp := new(tailcfg.MapResponse)
	if err := json.Unmarshal(raw, resp); err != nil {
		s.t.Fatalf("decoding map frame: %v", err)
	}
	s.held.apply(resp)
	return resp
}

func TestBadInput(t *testing.T) {
	ts := startServer(t, testTailnet(), "")
	good := newRawNode(t, ts)
	if r := good.register(good.registerReq(aliceKey)); r.Error != "" || !r.MachineAuthorized {
		t.Fatalf("valid registration failed: %+v", r)
	}
	oneShotUser := newRawNode(t, ts)
	if r := oneShotUser.register(oneShotUser.registerReq(oneShotKey)); r.Error != "" {
		t.Fatalf("first use of the one-shot key failed: %s", r.Error)
	}
	for range 2 {
		n := newRawNode(t, ts)
		if r := n.register(n.registerReq(limitedKey)); r.Error != "" {
			t.Fatalf("use of the limited key failed: %s", r.Error)
		}
	}

	registerTests := []struct {
		name    string
		mutate  func(n *rawNode, req *tailcfg.RegisterRequest)
		authKey string
		want    string // substring of RegisterResponse.Error
	}{
		{name: "no-auth-key", want: "auth keys only"},
		{name: "unknown-auth-key", authKey: "tskey-auth-nope", want: "not declared"},
		{name: "expired-auth-key", authKey: expiredKey, want: `auth key "expired" expired at 2020-01-01`},
		{name: "one-shot-key-reused", authKey: oneShotKey, want: "one-shot and was already used"},
		{name: "use-limit-reached", authKey: limitedKey, want: "no uses left (limit 2)"},
		{name: "old-capability-version", authKey: aliceKey, want: "too old",
			mutate: func(_ *rawNode, req *tailcfg.RegisterRequest) { req.Version = 90 }},
		{name: "no-node-key", authKey: aliceKey, want: "no node key",
			mutate: func(_ *rawNode, req *tailcfg.RegisterRequest) { req.NodeKey = key.NodePublic{} }},
		{name: "node-key-of-another-machine", authKey: aliceKey, want: "registered by a different machine",
			mutate: func(_ *rawNode, req *tailcfg.RegisterRequest) { req.NodeKey = good.nk.Public() }},
		{name: "old-node-key-of-another-machine", authKey: aliceKey, want: "registered by a different machine",
			mutate: func(_ *rawNode, req *tailcfg.RegisterRequest) { req.OldNodeKey = good.nk.Public() }},
		{name: "tag-not-owned", authKey: limitedKey, want: `may not be used by bob@example.com`,
			mutate: func(_ *rawNode, req *tailcfg.RegisterRequest) { req.Hostinfo.RequestTags = []string{"tag:server"} }},
		{name: "undeclared-tag", authKey: aliceKey, want: `"tag:nope" is not declared in tagOwners`,
			mutate: func(_ *rawNode, req *tailcfg.RegisterRequest) { req.Hostinfo.RequestTags = []string{"tag:nope"} }},
	}
	for _, tt := range registerTests {
		t.Run("register/"+tt.name, func(t *testing.T) {
			n := newRawNode(t, ts)
			req := n.registerReq(tt.authKey)
			if tt.mutate != nil {
				tt.mutate(n, req)
			}
			r := n.register(req)
			if !strings.Contains(r.Error, tt.want) {
				t.Errorf("Error = %q, want it to contain %q", r.Error, tt.want)
			}
			if r.MachineAuthorized {
				t.Errorf("rejected registration says MachineAuthorized")
			}
		})
	}

	stranger := newRawNode(t, ts)
	httpTests := []struct {
		name     string
		node     *rawNode
		path     string
		body     any
		wantCode int
		want     string
	}{
		{"malformed-register-body", stranger, "/machine/register", []byte("{not json"), 400, "not valid JSON"},
		{"oversized-register-body", stranger, "/machine/register", bytes.Repeat([]byte(" "), 2<<20), 400, "larger than"},
		{"malformed-map-body", stranger, "/machine/map", []byte(`{"Version": "x"}`), 400, "not valid JSON"},
		{"oversized-map-body", stranger, "/machine/map", append([]byte(`{"Hostinfo":{"Hostname":"`), bytes.Repeat([]byte("a"), 2<<20)...), 400, "larger than"},
		{"unknown-node-key", stranger, "/machine/map", stranger.mapReq(false), 401, "is not registered"},
		{"node-key-from-wrong-machine", stranger, "/machine/map", func() any {
			r := stranger.mapReq(false)
			r.NodeKey = good.nk.Public()
			return r
		}(), 403, "belongs to a different machine"},
		{"old-capability-version", good, "/machine/map", func() any {
			r := good.mapReq(false)
			r.Version = 90
			return r
		}(), 400, "too old"},
		{"unknown-endpoint", good, "/machine/nope", []byte("{}"), 404, ""},
	}
	for _, tt := range httpTests {
		t.Run("http/"+tt.name, func(t *testing.T) {
			code, body := tt.node.post(tt.path, tt.body)
			if code != tt.wantCode || !strings.Contains(string(body), tt.want) {
				t.Errorf("got HTTP %d %q, want %d containing %q", code, body, tt.wantCode, tt.want)
			}
		})
	}

	t.Run("key-endpoint-old-client", func(t *testing.T) {
		res, err := http.Get(ts.URL + "/key?v=90")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 400 || !strings.Contains(string(b), "upgrade") {
			t.Errorf("got HTTP %d %q, want 400 asking to upgrade", res.StatusCode, b)
		}
	})

	t.Run("server-still-serves", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		m := good.stream(ctx, good.mapReq(true)).next()
		if m.Node == nil || m.Node.Name != "raw.tail.test." {
			t.Fatalf("first map message has Node %+v, want raw.tail.test.", m.Node)
		}
		if got := len(m.Peers); got != 3 {
			t.Errorf("got %d peers, want 3 (the one-shot and two limited-key nodes)", got)
		}
	})
}

// TestDeltas checks that runtime changes reach peers as small patches and
// that registrations and removals arrive as PeersChanged/PeersRemoved.
func TestDeltas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServer(t, testTailnet(), "")
	a := newRawNode(t, ts)
	a.register(a.registerReq(aliceKey))
	sa := a.stream(ctx, a.mapReq(true, "192.0.2.1:41641"))
	first := sa.next()
	if first.Node == nil || len(first.PeersRemoved) != 0 || first.PacketFilters == nil {
		t.Fatalf("first message: Node=%v PeersRemoved=%v PacketFilters=%v", first.Node, first.PeersRemoved, first.PacketFilters)
	}

	b := newRawNode(t, ts)
	b.register(b.registerReq(aliceKey))
	m := sa.next()
	if len(m.PeersChanged) != 1 || m.PeersChanged[0].Name != "raw-2.tail.test." {
		t.Fatalf("after b registered: PeersChanged = %v, want raw-2", m.PeersChanged)
	}
	bID := m.PeersChanged[0].ID

	// b comes online with endpoints: a gets a patch, not a full node.
	sb := b.stream(ctx, b.mapReq(true, "192.0.2.2:41641"))
	if got := sb.next(); len(got.Peers) != 1 {
		t.Fatalf("b's first map has %d peers, want 1", len(got.Peers))
	}
	m = sa.next()
	if len(m.PeersChanged) != 0 || len(m.PeersChangedPatch) != 1 {
		t.Fatalf("after b connected: PeersChanged=%d PeersChangedPatch=%d, want 0 and 1", len(m.PeersChanged), len(m.PeersChangedPatch))
	}
	p := m.PeersChangedPatch[0]
	if p.NodeID != bID || p.Online == nil || !*p.Online || len(p.Endpoints) != 1 || p.DiscoKey == nil {
		t.Errorf("patch = %+v, want b online with its endpoint and disco key", p)
	}

	// A lite (non-streaming) update moves b's endpoint.
	code, body := b.post("/machine/map", b.mapReq(false, "192.0.2.3:41641"))
	if code != 200 {
		t.Fatalf("lite update: HTTP %d %s", code, body)
	}
	m = sa.next()
	if len(m.PeersChangedPatch) != 1 || m.PeersChangedPatch[0].Endpoints[0].String() != "192.0.2.3:41641" {
		t.Errorf("after endpoint change: patches = %+v", m.PeersChangedPatch)
	}

	// b logs out: a sees it removed.
	b.logout()
	for {
		m = sa.next()
		if len(m.PeersRemoved) > 0 {
			break
		}
	}
	if m.PeersRemoved[0] != bID {
		t.Errorf("PeersRemoved = %v, want [%d]", m.PeersRemoved, bID)
	}
}

func TestKeepAliveAndSessionReplacement(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServerWith(t, testTailnet(), "", func(c *Config) { c.KeepAlive = 20 * time.Millisecond })
	n := newRawNode(t, ts)
	n.register(n.registerReq(aliceKey))
	s1 := n.stream(ctx, n.mapReq(true))
	if first := s1.nextAny(); first.Node == nil {
		t.Fatalf("first message lacks Node: %+v", first)
	}
	if ka := s1.nextAny(); !ka.KeepAlive {
		t.Errorf("idle stream sent %+v, want a keep-alive", ka)
	}
	// A second stream from the same node replaces the first, which ends.
	s2 := n.stream(ctx, n.mapReq(true))
	if first := s2.next(); first.Node == nil {
		t.Fatalf("second stream's first message lacks Node")
	}
	// The first stream ends; reading it fails only by the test's deadline
	// if the server never ends it.
	var hdr [4]byte
	var err error
	for err == nil {
		if _, err = io.ReadFull(s1.body, hdr[:]); err == nil {
			_, err = io.ReadFull(s1.body, make([]byte, binary.LittleEndian.Uint32(hdr[:])))
		}
	}
	if ctx.Err() != nil {
		t.Errorf("the replaced stream did not end (read until the deadline: %v)", err)
	}
}
