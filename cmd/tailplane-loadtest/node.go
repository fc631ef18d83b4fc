package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"tailscale.com/control/ts2021"
	"tailscale.com/net/tsdial"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/util/zstdframe"
)

// sim is what every simulated node shares.
type sim struct {
	url       string
	serverKey key.MachinePublic
	dialer    *tsdial.Dialer
	probeID   atomic.Int64 // the probe's tailcfg.NodeID, once known
}

// node is one simulated Tailscale node: its keys, a Noise client (Tailscale's
// own ts2021 package, which redials as needed) and only what the load
// generator measures. It never holds a netmap: each map frame is decoded
// into the few fields below and dropped.
type node struct {
	idx     int
	mk      key.MachinePrivate
	nk      key.NodePrivate
	dk      key.DiscoPrivate
	c       *ts2021.Client
	epPort  atomic.Int32 // the port of the endpoint the node reports
	id      atomic.Int64 // its tailcfg.NodeID, from its own netmap
	npeers  atomic.Int32 // peers it holds
	fulls   atomic.Int32 // full netmaps received
	firstAt atomic.Int64 // when the first full netmap arrived, Unix ns
	streams atomic.Int32 // map streams that ended (errors, restarts)
	frames  atomic.Int64 // map frames received
	bytes   atomic.Int64 // their JSON, decompressed
	rev     atomic.Int32 // config revision of its packet filter (commit marker)
	revAt   atomic.Int64 // when rev last changed, Unix ns
	probeEP atomic.Int32 // port of the probe's endpoint it last saw
	probeAt atomic.Int64 // when probeEP last changed, Unix ns
	home    atomic.Int32 // the relay port its DERP map lists first: which replica it streams to
	noff    atomic.Int32 // peers it holds as offline

	mu      sync.Mutex // guards the fields below; written by the stream goroutine
	peers   bitset     // by tailcfg.NodeID
	offline bitset     // peers last said to be offline, by tailcfg.NodeID
}

// bitset is a set of small non-negative integers.
type bitset []uint64

func (b *bitset) set(i int64, on bool) {
	w := int(i / 64)
	if w >= len(*b) {
		if !on {
			return
		}
		*b = append(*b, make([]uint64, w+1-len(*b))...)
	}
	if on {
		(*b)[w] |= 1 << (i % 64)
	} else {
		(*b)[w] &^= 1 << (i % 64)
	}
}

func (b bitset) has(i int64) bool {
	w := int(i / 64)
	return w < len(b) && b[w]&(1<<(i%64)) != 0
}

// countAnd returns how many members b and o have in common.
func (b bitset) countAnd(o bitset) int {
	n := 0
	for i := range min(len(b), len(o)) {
		n += bits.OnesCount64(b[i] & o[i])
	}
	return n
}

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// maxNodeID bounds node IDs so a peer bitset stays small.
const maxNodeID = 1 << 24

func (n *node) hostinfo() *tailcfg.Hostinfo {
	name := fmt.Sprintf("lt%05d", n.idx)
	return &tailcfg.Hostinfo{Hostname: name, OS: "linux", BackendLogID: "loadtest-" + name}
}

func (n *node) endpoints() []netip.AddrPort {
	return []netip.AddrPort{netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(n.epPort.Load()))}
}

// register registers n with authKey over Noise.
func (n *node) register(ctx context.Context, authKey string) error {
	req := &tailcfg.RegisterRequest{
		Version:  tailcfg.CurrentCapabilityVersion,
		NodeKey:  n.nk.Public(),
		Hostinfo: n.hostinfo(),
		Auth:     &tailcfg.RegisterResponseAuth{AuthKey: authKey},
	}
	res, err := n.c.Post(ctx, "/machine/register", n.nk.Public(), req)
	if err != nil {
		return fmt.Errorf("node %d: register: %w", n.idx, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != 200 {
		return fmt.Errorf("node %d: register: HTTP %d: %.200s", n.idx, res.StatusCode, body)
	}
	var resp tailcfg.RegisterResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("node %d: register response: %w", n.idx, err)
	}
	if resp.Error != "" || !resp.MachineAuthorized {
		return fmt.Errorf("node %d: register refused (authorized=%v): %s", n.idx, resp.MachineAuthorized, resp.Error)
	}
	return nil
}

func (n *node) mapRequest(stream bool) *tailcfg.MapRequest {
	return &tailcfg.MapRequest{
		Version:   tailcfg.CurrentCapabilityVersion,
		NodeKey:   n.nk.Public(),
		DiscoKey:  n.dk.Public(),
		Stream:    stream,
		OmitPeers: !stream,
		Compress:  "zstd",
		Hostinfo:  n.hostinfo(),
		Endpoints: n.endpoints(),
	}
}

// setEndpoint reports a new endpoint port the way a client's lite map
// update does (Stream false, OmitPeers true).
func (n *node) setEndpoint(ctx context.Context, port uint16) error {
	n.epPort.Store(int32(port))
	res, err := n.c.Post(ctx, "/machine/map", n.nk.Public(), n.mapRequest(false))
	if err != nil {
		return fmt.Errorf("node %d: endpoint update: %w", n.idx, err)
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	if res.StatusCode != 200 {
		return fmt.Errorf("node %d: endpoint update: HTTP %d", n.idx, res.StatusCode)
	}
	return nil
}

// poll holds n's map stream open until ctx ends, reconnecting with a
// jittered backoff (100 ms doubling to 1 s) whenever the stream breaks.
func (n *node) poll(ctx context.Context, s *sim) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		n.stream(ctx, s)
		n.streams.Add(1)
		if time.Since(start) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// rawBufs and decodedBufs recycle the buffers of compressed and of
// decompressed frames across nodes, so none keeps a netmap-sized buffer
// while idle. They are apart because a node holds its compressed frame
// while it waits for a decode slot: from one pool it could be holding a
// decompressed netmap's buffer, several times the size (in a 5,000-node
// mesh, thousands of nodes wait at once). scanners recycles the map
// scanners (and their ID slices).
// decodeSlots bounds how many frames are decompressed and scanned at once
// (more than the cores cannot go faster), and so the memory of
// decompressed netmaps: when every node of a 5,000-node mesh gets its
// 4 MB netmap at once, only these hold one.
var (
	rawBufs     = sync.Pool{New: func() any { return new([]byte) }}
	decodedBufs = sync.Pool{New: func() any { return new([]byte) }}
	scanners    = sync.Pool{New: func() any { return new(mapScanner) }}
	decodeSlots = make(chan struct{}, 2*runtime.GOMAXPROCS(0))
)

// stream runs one map stream and returns when it ends.
func (n *node) stream(ctx context.Context, s *sim) error {
	res, err := n.c.Post(ctx, "/machine/map", n.nk.Public(), n.mapRequest(true))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("node %d: map: HTTP %d", n.idx, res.StatusCode)
	}
	first := true
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(res.Body, hdr[:]); err != nil {
			return err
		}
		size := binary.LittleEndian.Uint32(hdr[:])
		if size > 64<<20 {
			return fmt.Errorf("node %d: map frame of %d bytes", n.idx, size)
		}
		if err := n.frame(res.Body, int(size), first, s); err != nil {
			return err
		}
		first = false
	}
}

// frame reads, decodes and applies one map frame of size bytes.
func (n *node) frame(r io.Reader, size int, first bool, s *sim) error {
	rawp := rawBufs.Get().(*[]byte)
	defer rawBufs.Put(rawp)
	if cap(*rawp) < size {
		*rawp = make([]byte, size)
	}
	raw := (*rawp)[:size]
	if _, err := io.ReadFull(r, raw); err != nil {
		return err
	}
	decodeSlots <- struct{}{}
	defer func() { <-decodeSlots }()
	decp := decodedBufs.Get().(*[]byte)
	defer decodedBufs.Put(decp)
	dec, err := zstdframe.AppendDecode((*decp)[:0], raw)
	if err != nil {
		return fmt.Errorf("node %d: decompressing a map frame: %w", n.idx, err)
	}
	*decp = dec
	n.frames.Add(1)
	n.bytes.Add(int64(len(dec)))
	sc := scanners.Get().(*mapScanner)
	defer scanners.Put(sc)
	m, err := sc.scan(dec, s.probeID.Load())
	if err != nil {
		return fmt.Errorf("node %d: decoding a map frame: %w", n.idx, err)
	}
	if m.keepAlive && !first {
		return nil
	}
	n.apply(m, first)
	return nil
}

// apply folds one map message into n's measurements.
func (n *node) apply(m *frameInfo, full bool) {
	now := time.Now().UnixNano()
	if m.selfID > 0 {
		n.id.Store(m.selfID)
	}
	full = full || len(m.peers) > 0
	n.mu.Lock()
	if full {
		clear(n.peers)
		clear(n.offline)
		for _, id := range m.peers {
			n.setPeerLocked(id, true)
		}
	}
	for _, id := range m.changed {
		n.setPeerLocked(id, true)
	}
	for _, id := range m.removed {
		n.setPeerLocked(id, false)
		n.setOfflineLocked(id, false)
	}
	for _, list := range m.online {
		for _, o := range list {
			n.setOfflineLocked(o.id, !o.on)
		}
	}
	n.npeers.Store(int32(n.peers.count()))
	n.noff.Store(int32(n.peers.countAnd(n.offline)))
	n.mu.Unlock()
	if full {
		if n.fulls.Add(1) == 1 {
			n.firstAt.Store(now)
		}
	}
	if m.probePort >= 0 {
		if n.probeEP.Swap(m.probePort) != m.probePort {
			n.probeAt.Store(now)
		}
	}
	if m.homePort >= 0 {
		n.home.Store(m.homePort)
	}
	if m.hasFilters {
		if rev := int32(m.filterRev); n.rev.Swap(rev) != rev {
			n.revAt.Store(now)
		}
	}
}

func (n *node) setPeerLocked(id int64, on bool) {
	if id > 0 && id < maxNodeID {
		n.peers.set(id, on)
	}
}

func (n *node) setOfflineLocked(id int64, off bool) {
	if id > 0 && id < maxNodeID {
		n.offline.set(id, off)
	}
}
