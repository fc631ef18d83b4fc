package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"tailscale.com/tailcfg"
	"tailscale.com/util/zstdframe"
)

// decodeAny decodes JSON into generic values, so two encodings compare
// by what they say, not by field order.
func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %.200q: %v", b, err)
	}
	return v
}

// TestEncodeMapMatchesMarshal checks that a message assembled from cached
// node views says exactly what json.Marshal of it says, for full netmaps
// (with and without peers), deltas and keep-alives.
func TestEncodeMapMatchesMarshal(t *testing.T) {
	w := benchWorld(t, 5)
	p := w.nodes[1]
	full := w.fullMap(p, false)
	on := true
	delta := w.srv.deltaMap(pendingDelta{
		selfView: p.view,
		changed:  map[tailcfg.NodeID]*tailcfg.Node{2: w.nodes[2].view, 3: w.nodes[3].view},
		patches:  map[tailcfg.NodeID]*tailcfg.PeerChange{4: {NodeID: 4, Online: &on}},
		removed:  map[tailcfg.NodeID]bool{5: true},
	})
	stale := *w.nodes[2].view // a view that is not the node's current one
	stale.Endpoints = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:41641")}
	alone := benchWorld(t, 1)
	tests := []struct {
		name string
		resp *tailcfg.MapResponse
	}{
		{"full netmap", full},
		{"full netmap without peers", alone.fullMap(alone.nodes[1], false)},
		{"delta", delta},
		{"stale changed view", &tailcfg.MapResponse{PeersChanged: []*tailcfg.Node{&stale}}},
		{"keep-alive", &tailcfg.MapResponse{KeepAlive: true}},
		{"empty", &tailcfg.MapResponse{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(tt.resp)
			if err != nil {
				t.Fatal(err)
			}
			for round := range 2 { // the second round reads the cache
				got, err := w.srv.views.encodeMap(nil, tt.resp)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(decodeAny(t, want), decodeAny(t, got)); diff != "" {
					t.Errorf("round %d: encodeMap differs from json.Marshal (-want +got):\n%s", round, diff)
				}
			}
		})
	}
}

// TestViewCacheFollowsChanges checks that the cached encoding of a node's
// view is its fresh encoding, and that a change replaces it.
func TestViewCacheFollowsChanges(t *testing.T) {
	w := benchWorld(t, 3)
	n := w.nodes[2]
	check := func(when string) {
		t.Helper()
		got, err := w.srv.views.encoded(n.view)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(n.view)
		if string(got) != string(want) {
			t.Errorf("%s: cached bytes differ from a fresh encoding:\n got %s\nwant %s", when, got, want)
		}
	}
	check("before the change")
	old := n.view
	w.applyMapRequest(n, &tailcfg.MapRequest{NodeKey: n.nodeKey, Version: n.capVer,
		Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.9:41641")}})
	if n.view == old {
		t.Fatal("the endpoint change built no new view")
	}
	check("after the change")
	if b, _ := w.srv.views.encoded(old); decodeAny(t, b).(map[string]any)["Endpoints"] != nil {
		t.Errorf("the old view's encoding carries the new endpoints: %s", b)
	}
	w.srv.views.forget(n.id)
	check("after forget")
}

// TestStreamedNetmapsMatchState reads a real stream over Noise and HTTP/2
// and compares what the client decodes, the first full netmap and a
// delta, with the server's state encoded by json.Marshal.
func TestStreamedNetmapsMatchState(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServer(t, testTailnet(), "")
	peer := newRawNode(t, ts)
	peer.register(peer.registerReq(aliceKey))
	peer.post("/machine/map", peer.mapReq(false, "192.0.2.1:41641"))
	n := newRawNode(t, ts)
	n.register(n.registerReq(aliceKey))
	s := n.stream(ctx, n.mapReq(true))
	got := s.next()

	var want tailcfg.MapResponse
	ts.do(ctx, func(w *world) error {
		self := w.byKey[n.nk.Public()]
		b, err := json.Marshal(w.fullMap(self, false))
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &want)
	})
	ignore := func(r *tailcfg.MapResponse) { r.ControlTime = nil }
	ignore(got)
	ignore(&want)
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("streamed full netmap differs from the state (-want +got):\n%s", diff)
	}

	third := newRawNode(t, ts)
	third.register(third.registerReq(aliceKey))
	m := s.next()
	for len(m.PeersChanged) == 0 {
		m = s.next()
	}
	var view tailcfg.Node
	ts.do(ctx, func(w *world) error {
		b, err := json.Marshal(w.byKey[third.nk.Public()].view)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &view)
	})
	if diff := cmp.Diff([]*tailcfg.Node{&view}, m.PeersChanged); diff != "" {
		t.Errorf("streamed changed peer differs from its view (-want +got):\n%s", diff)
	}
}

// TestFrameCacheCompresses checks that what frameCache returns decodes to
// the message asked for, whether it was compressed before, is new, or too
// large to be kept.
func TestFrameCacheCompresses(t *testing.T) {
	var c frameCache
	large := bytes.Repeat([]byte(`{"KeepAlive":true}`), frameCacheMaxJSON)
	msgs := [][]byte{[]byte(`{"PeersRemoved":[1]}`), []byte(`{"PeersRemoved":[2]}`), []byte(`{"PeersRemoved":[1]}`), large}
	for i := range frameCacheMaxEntries + 10 { // past the bound, which drops entries
		msgs = append(msgs, fmt.Appendf(nil, `{"PeersRemoved":[%d]}`, i))
	}
	msgs = append(msgs, msgs[0])
	for i, m := range msgs {
		got, err := zstdframe.AppendDecode(nil, c.compress(m))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, m) {
			t.Errorf("message %d decodes to %.100q, want %.100q", i, got, m)
		}
	}
}

// TestSnapshotMapMatchesFullMap checks that a full netmap built off the
// owner goroutine from the published state equals the owner's own, for
// every node, with a node pending approval and one logged out among them.
func TestSnapshotMapMatchesFullMap(t *testing.T) {
	w := benchWorld(t, 6)
	w.nodes[3].pending = true
	w.membershipChanged(w.nodes[3], false)
	w.nodes[4].loggedOut = true
	w.membershipChanged(w.nodes[4], false)
	for id, n := range w.nodes {
		want := w.fullMap(n, false)
		got := w.srv.snapshotMap(n.sess, id)
		if got == nil {
			t.Fatalf("node %d: snapshotMap returned nothing", id)
		}
		if wantPeers := map[bool]int{true: 3, false: 0}[id != 3 && id != 4]; len(got.Peers) != wantPeers {
			t.Errorf("node %d has %d peers, want %d (the pending and the logged-out node are hidden)", id, len(got.Peers), wantPeers)
		}
		want.ControlTime, got.ControlTime = nil, nil
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(got)
		if diff := cmp.Diff(decodeAny(t, wb), decodeAny(t, gb)); diff != "" {
			t.Errorf("node %d: snapshotMap differs from fullMap (-fullMap +snapshotMap):\n%s", id, diff)
		}
	}
}

// TestViewCacheIDs checks lookups by ID on both sides of the dense index
// (denseIDs): a view is found once set, and not after forget.
func TestViewCacheIDs(t *testing.T) {
	var c viewCache
	for _, id := range []tailcfg.NodeID{5, 1, denseIDs - 1, denseIDs, 3 * denseIDs} {
		v := &tailcfg.Node{ID: id}
		if got := c.current(id); got != nil {
			t.Fatalf("node %d: found before it was set", id)
		}
		c.set(v)
		if got := c.current(id); got != v {
			t.Fatalf("node %d: current = %v, want the view set", id, got)
		}
		if b, err := c.encoded(v); err != nil || !bytes.Contains(b, fmt.Appendf(nil, `"ID":%d`, id)) {
			t.Fatalf("node %d: encoded = %s, %v", id, b, err)
		}
	}
	if got := len(c.ids()); got != 5 {
		t.Errorf("ids lists %d nodes, want 5", got)
	}
	for _, id := range []tailcfg.NodeID{5, 3 * denseIDs} {
		c.forget(id)
		if c.current(id) != nil {
			t.Errorf("node %d: found after forget", id)
		}
	}
	if c.current(2) != nil || c.current(2*denseIDs) != nil {
		t.Error("an ID never set was found")
	}
}
