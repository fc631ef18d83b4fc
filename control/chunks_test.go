package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/tailplane/tailplane/internal/testkit"
	"tailscale.com/ipn"
	"tailscale.com/tailcfg"
	"tailscale.com/util/zstdframe"
)

// decodeChunked decodes a multi-frame message as clients do, and checks
// that no frame states its content size (see chunks.go).
func decodeChunked(t *testing.T, z []byte) []byte {
	t.Helper()
	for rest := z; len(rest) > 0; {
		var h zstd.Header
		if err := h.Decode(rest); err != nil {
			t.Fatalf("frame header at byte %d: %v", len(z)-len(rest), err)
		}
		if h.HasFCS {
			t.Errorf("the frame at byte %d states its content size (%d)", len(z)-len(rest), h.FrameContentSize)
		}
		n, err := zstdframe.NextSize(rest)
		if err != nil {
			t.Fatalf("frame at byte %d: %v", len(z)-len(rest), err)
		}
		rest = rest[n:]
	}
	b, err := zstdframe.AppendDecode(nil, z)
	if err != nil {
		t.Fatalf("decoding the message: %v", err)
	}
	return b
}

// TestEncodeChunkedMatchesMarshal checks that a message assembled from
// cached runs of views and frames of its own decodes to what json.Marshal
// of it says: full netmaps of nodes in and outside the runs' ranges,
// deltas with stale views and gaps, and lists whose last view ends a run.
func TestEncodeChunkedMatchesMarshal(t *testing.T) {
	w := benchWorld(t, 300)
	stale := *w.nodes[70].view // a view that is not the node's current one
	stale.Endpoints = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:41641")}
	var changed, gappy, endsRun []*tailcfg.Node
	for id := tailcfg.NodeID(65); id <= 200; id++ {
		v := w.nodes[id].view
		if id == 70 {
			v = &stale
		}
		changed = append(changed, v)
		if id%3 != 0 {
			gappy = append(gappy, v)
		}
	}
	for id := tailcfg.NodeID(1); id <= 64; id++ {
		endsRun = append(endsRun, w.nodes[id].view)
	}
	tests := []struct {
		name string
		resp *tailcfg.MapResponse
	}{
		{"full netmap of node 1", w.fullMap(w.nodes[1], false)},
		{"full netmap of node 150", w.fullMap(w.nodes[150], false)},
		{"full netmap of node 300", w.fullMap(w.nodes[300], false)},
		{"delta", w.srv.deltaMap(pendingDelta{selfView: w.nodes[2].view, changed: nodeMap(changed)})},
		{"delta with gaps", &tailcfg.MapResponse{PeersChanged: gappy, PeersRemoved: []tailcfg.NodeID{3}}},
		{"last view ends a range", &tailcfg.MapResponse{Peers: endsRun}},
		{"both lists", &tailcfg.MapResponse{Peers: endsRun, PeersChanged: changed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(tt.resp)
			if err != nil {
				t.Fatal(err)
			}
			for round := range 2 { // the second round reads the cache
				z, ok, err := w.srv.views.encodeChunked(tt.resp, &w.srv.chunks)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					t.Fatal("encodeChunked found no run to share")
				}
				got := decodeChunked(t, z)
				if diff := cmp.Diff(decodeAny(t, want), decodeAny(t, got)); diff != "" {
					t.Errorf("round %d: the chunked message differs from json.Marshal (-want +got):\n%s", round, diff)
				}
			}
		})
	}
}

func nodeMap(views []*tailcfg.Node) map[tailcfg.NodeID]*tailcfg.Node {
	m := map[tailcfg.NodeID]*tailcfg.Node{}
	for _, v := range views {
		m[v.ID] = v
	}
	return m
}

// TestEncodeChunkedDeclines checks that messages without a run worth
// sharing are left to the whole-message path.
func TestEncodeChunkedDeclines(t *testing.T) {
	w := benchWorld(t, 200)
	var scattered []*tailcfg.Node
	for id := tailcfg.NodeID(1); id <= 200; id += chunkIDs/(chunkMinViews-1) + 1 {
		scattered = append(scattered, w.nodes[id].view)
	}
	for name, resp := range map[string]*tailcfg.MapResponse{
		"keep-alive":        {KeepAlive: true},
		"few peers":         {Peers: scattered[:chunkMinViews]},
		"scattered peers":   {PeersChanged: scattered},
		"only stale views":  {Peers: staleCopies(w, 1, 40)},
		"patches, no views": {PeersChangedPatch: []*tailcfg.PeerChange{{NodeID: 1}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, ok, err := w.srv.views.encodeChunked(resp, &w.srv.chunks); ok || err != nil {
				t.Errorf("encodeChunked = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

func staleCopies(w *world, from, to tailcfg.NodeID) []*tailcfg.Node {
	var out []*tailcfg.Node
	for id := from; id <= to; id++ {
		v := *w.nodes[id].view
		out = append(out, &v)
	}
	return out
}

// TestChunkCacheSharesRuns checks that the full netmaps of two nodes
// share the compressed runs of every range neither node is in, and that a
// view's change makes a new run that carries it.
func TestChunkCacheSharesRuns(t *testing.T) {
	w := benchWorld(t, 300)
	encode := func(id tailcfg.NodeID) []byte {
		t.Helper()
		z, ok, err := w.srv.views.encodeChunked(w.fullMap(w.nodes[id], false), &w.srv.chunks)
		if err != nil || !ok {
			t.Fatalf("node %d: encodeChunked = %v, %v", id, ok, err)
		}
		return z
	}
	encode(1)
	first := map[int64]*chunk{}
	for rng, slot := range w.srv.chunks.slots {
		first[rng] = slot[0]
	}
	encode(299)
	for rng, ch := range first {
		slot := w.srv.chunks.slots[rng]
		switch {
		case rng == 1/chunkIDs || rng == 299/chunkIDs:
			if len(slot) != 2 { // with and without the node
				t.Errorf("range %d (node 1's or 299's) has %d variants, want 2", rng, len(slot))
			}
		case len(slot) != 1 || slot[0] != ch:
			t.Errorf("range %d: node 299's netmap did not reuse node 1's run (%d variants)", rng, len(slot))
		}
	}

	n := w.nodes[100]
	w.applyMapRequest(n, &tailcfg.MapRequest{NodeKey: n.nodeKey, Version: n.capVer,
		Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.9:41641")}})
	var resp tailcfg.MapResponse
	if err := json.Unmarshal(decodeChunked(t, encode(1)), &resp); err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Peers {
		if p.ID == 100 && fmt.Sprint(p.Endpoints) != "[192.0.2.9:41641]" {
			t.Errorf("node 100's endpoints after the change: %v", p.Endpoints)
		}
	}
}

// TestChunkCacheBounds checks the cache's limits: chunkVariants per range,
// most recently used kept, and the whole cache dropped past chunkMaxBytes.
func TestChunkCacheBounds(t *testing.T) {
	var vc viewCache
	var c chunkCache
	views := func(n int) []*encodedView {
		out := make([]*encodedView, n)
		for i := range out {
			v := &tailcfg.Node{ID: tailcfg.NodeID(i + 1)}
			vc.set(v)
			out[i] = vc.entriesOf([]*tailcfg.Node{v})[0]
		}
		return out
	}
	hot := views(20)
	if _, err := c.get(0, hot); err != nil {
		t.Fatal(err)
	}
	for i := range chunkVariants + 3 {
		if _, err := c.get(0, views(20)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.get(0, hot); err != nil { // used again: stays
			t.Fatal(err)
		}
		if got := len(c.slots[0]); got > chunkVariants {
			t.Fatalf("after %d variants range 0 holds %d, want at most %d", i+2, got, chunkVariants)
		}
	}
	if !c.slots[0][0].holds(hot) {
		t.Error("the run used most recently is not first")
	}
	held := 0
	for _, slot := range c.slots {
		for _, ch := range slot {
			held += len(ch.z)
		}
	}
	if held != c.bytes {
		t.Errorf("cache counts %d bytes, holds %d", c.bytes, held)
	}
	c.bytes = chunkMaxBytes // as if full
	if _, err := c.get(7, views(20)); err != nil {
		t.Fatal(err)
	}
	if len(c.slots) != 1 || len(c.slots[7]) != 1 {
		t.Errorf("a full cache was not dropped before the new run: %d ranges", len(c.slots))
	}
}

// TestChunkCacheConcurrent: sessions asking for the same run at once
// get the same bytes, and the range keeps one variant of it.
func TestChunkCacheConcurrent(t *testing.T) {
	w := benchWorld(t, 64)
	var views []*tailcfg.Node
	for id := tailcfg.NodeID(1); id <= 40; id++ {
		views = append(views, w.nodes[id].view)
	}
	entries := w.srv.views.entriesOf(views)
	var c chunkCache
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Go(func() {
			z, err := c.get(0, entries)
			if err != nil {
				t.Error(err)
			}
			got[i] = z
		})
	}
	wg.Wait()
	want, _ := zstdframe.AppendDecode(nil, got[0])
	for i, z := range got {
		if b, err := zstdframe.AppendDecode(nil, z); err != nil || !bytes.Equal(b, want) {
			t.Errorf("session %d got other bytes (%v)", i, err)
		}
	}
	if n := len(c.slots[0]); n != 1 {
		t.Errorf("range 0 holds %d variants of one run, want 1", n)
	}
}

// TestTSNetReadsChunkedNetmap has Tailscale's own client (tsnet, whose
// map session is controlclient's) join a tailnet big enough that its
// full netmap and the deltas it gets are sent as several zstd frames, and
// checks that it holds every peer with its endpoints.
func TestTSNetReadsChunkedNetmap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ts := startServer(t, testTailnet(), "")
	const peers = 2*chunkMinViews + 8
	for i := range peers {
		n := newRawNode(t, ts)
		n.register(n.registerReq(aliceKey))
		n.post("/machine/map", n.mapReq(false, fmt.Sprintf("192.0.2.1:%d", 40000+i)))
	}
	s := testkit.StartTSNet(t, ctx, testkit.TSNet{ControlURL: ts.URL, Hostname: "reader", AuthKey: aliceKey})
	lc, err := s.LocalClient()
	if err != nil {
		t.Fatal(err)
	}
	watch, err := lc.WatchIPNBus(ctx, ipn.NotifyInitialNetMap)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	for {
		nt, err := watch.Next()
		if err != nil {
			t.Fatalf("waiting for a netmap with every peer and its endpoint: %v", err)
		}
		if nt.NetMap == nil {
			continue
		}
		got := map[string]string{}
		for _, p := range nt.NetMap.Peers {
			got[p.ComputedName()] = fmt.Sprint(p.Endpoints().AsSlice())
		}
		if len(got) < peers {
			continue
		}
		want := map[string]string{"raw": "[192.0.2.1:40000]"}
		for i := 1; i < peers; i++ {
			want[fmt.Sprintf("raw-%d", i+1)] = fmt.Sprintf("[192.0.2.1:%d]", 40000+i)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("the tsnet node's peers and endpoints (-want +got):\n%s", diff)
		}
		break
	}
	ts.chunks.mu.Lock()
	ranges := len(ts.chunks.slots)
	ts.chunks.mu.Unlock()
	if ranges == 0 {
		t.Error("no run of views was sent as a chunk: the test did not exercise chunked messages")
	}
}

// BenchmarkDecodeNetmap measures what a client pays to decode a full
// netmap of 5,000 peers sent whole (one frame) and chunked (a frame per
// ID range), into a nil buffer as controlclient does. A whole frame
// states its size and is decoded into one allocation; chunked frames
// grow the output as append does (about 1.6 times the time here, a
// millisecond a full netmap of this size), where frames stating their
// sizes would copy the output once per frame.
func BenchmarkDecodeNetmap(b *testing.B) {
	w := benchWorld(b, 5000)
	resp := w.fullMap(w.nodes[1], false)
	j, err := w.srv.views.encodeMap(nil, resp)
	if err != nil {
		b.Fatal(err)
	}
	chunked, ok, err := w.srv.views.encodeChunked(resp, &w.srv.chunks)
	if err != nil || !ok {
		b.Fatalf("encodeChunked = %v, %v", ok, err)
	}
	for name, z := range map[string][]byte{"whole": zstdframe.AppendEncode(nil, j, zstdframe.FastestCompression), "chunked": chunked} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(j)))
			for b.Loop() {
				if _, err := zstdframe.AppendDecode(nil, z); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
