package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"sync"

	"github.com/tailplane/tailplane/policy"
	"tailscale.com/tailcfg"
	"tailscale.com/util/zstdframe"
)

// viewCache holds the JSON encoding of every node's current view. A
// node's view is the same in every netmap that carries it (as a peer, as
// a changed peer, or as the node itself), so it is encoded once per
// change, by the first session that sends it, and every other message
// copies the bytes. The owner goroutine names each node's current view
// (set, from refreshView) and forgets removed nodes; sessions encode
// lazily. A view that is no longer current is encoded afresh and not
// kept. The zero value is an empty cache.
type viewCache struct {
	mu sync.RWMutex // guards the fields below
	m  map[tailcfg.NodeID]*encodedView
	// byID mirrors m for IDs below denseIDs, indexed by ID: a full netmap
	// looks up every peer, and a slice is several times faster than the
	// map. The store hands out IDs in sequence, so it is dense.
	byID []*encodedView
	seq  uint64 // the last encodedView.seq handed out
}

// denseIDs bounds viewCache.byID (8 bytes a slot).
const denseIDs = 1 << 20

// lookupLocked returns id's entry, or nil.
func (c *viewCache) lookupLocked(id tailcfg.NodeID) *encodedView {
	if id >= 0 && int64(id) < int64(len(c.byID)) {
		return c.byID[id]
	}
	if id < denseIDs {
		return nil // a dense ID past the slice has no entry
	}
	return c.m[id]
}

// encodedView is one view and, once a session needed it, its encoding.
type encodedView struct {
	v    *tailcfg.Node
	seq  uint64 // unique to this view, in the order set was called
	once sync.Once
	b    []byte
	err  error
}

// set makes v the current view of its node, dropping the previous one's
// bytes. Owner goroutine.
func (c *viewCache) set(v *tailcfg.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[tailcfg.NodeID]*encodedView{}
	}
	if e := c.m[v.ID]; e != nil && e.v == v {
		return
	}
	c.seq++
	e := &encodedView{v: v, seq: c.seq}
	c.m[v.ID] = e
	if v.ID >= 0 && v.ID < denseIDs {
		if int(v.ID) >= len(c.byID) {
			c.byID = slices.Grow(c.byID, int(v.ID)+1-len(c.byID))[:v.ID+1]
		}
		c.byID[v.ID] = e
	}
}

// forget drops a removed node. Owner goroutine.
func (c *viewCache) forget(id tailcfg.NodeID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
	if id >= 0 && int64(id) < int64(len(c.byID)) {
		c.byID[id] = nil
	}
}

// current returns node id's current view, or nil for a removed node.
func (c *viewCache) current(id tailcfg.NodeID) *tailcfg.Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.lookupLocked(id); e != nil {
		return e.v
	}
	return nil
}

// currentOf returns the current views of the peers in ps but self, in
// ps's order; removed nodes are left out.
func (c *viewCache) currentOf(ps policy.PeerSet, self tailcfg.NodeID) []*tailcfg.Node {
	out := make([]*tailcfg.Node, 0, ps.Len())
	c.mu.RLock()
	defer c.mu.RUnlock()
	ps.Each(func(id tailcfg.NodeID) {
		if e := c.lookupLocked(id); e != nil && id != self {
			out = append(out, e.v)
		}
	})
	return out
}

// ids returns the IDs of every node with a view.
func (c *viewCache) ids() []tailcfg.NodeID {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Collect(maps.Keys(c.m))
}

// encoded returns v's JSON, from the cache when v is its node's current
// view. The bytes are shared: never modify them.
func (c *viewCache) encoded(v *tailcfg.Node) ([]byte, error) {
	c.mu.RLock()
	e := c.lookupLocked(v.ID)
	c.mu.RUnlock()
	if e == nil || e.v != v {
		return json.Marshal(v)
	}
	return e.encode()
}

// encode returns e's view's JSON, encoding it the first time.
func (e *encodedView) encode() ([]byte, error) {
	e.once.Do(func() { e.b, e.err = json.Marshal(e.v) })
	return e.b, e.err
}

// encodeMap appends resp as JSON to buf. It decodes to what
// json.Marshal(resp) decodes to; the node views in it (Node, Peers,
// PeersChanged) are copied from the cache instead of being encoded again,
// and they come last.
func (c *viewCache) encodeMap(buf []byte, resp *tailcfg.MapResponse) ([]byte, error) {
	m := msgEncoder{c: c, lit: buf}
	if err := m.encode(resp, listPlan{}, listPlan{}); err != nil {
		return nil, err
	}
	return m.lit, nil
}

// encodeChunked returns resp zstd-compressed as several frames, with the
// runs of peer views that many messages share copied from chunks (see
// chunks.go). It returns false, and nothing, when resp has no such run:
// the caller then encodes and compresses it whole.
func (c *viewCache) encodeChunked(resp *tailcfg.MapResponse, chunks *chunkCache) ([]byte, bool, error) {
	if len(resp.Peers)+len(resp.PeersChanged) <= chunkMinViews {
		return nil, false, nil
	}
	peers, changed := c.planList(resp.Peers), c.planList(resp.PeersChanged)
	if len(peers.runs)+len(changed.runs) == 0 {
		return nil, false, nil
	}
	jb := frameBufs.Get().(*[]byte)
	defer frameBufs.Put(jb)
	m := msgEncoder{c: c, chunks: chunks, lit: (*jb)[:0]}
	err := m.encode(resp, peers, changed)
	*jb = m.lit
	if err != nil {
		return nil, false, err
	}
	return m.z, true, nil
}

// msgEncoder assembles one message: JSON in lit, or, with chunks, zstd
// frames in z, the message's own JSON compressed between the cached runs.
type msgEncoder struct {
	c      *viewCache
	chunks *chunkCache // nil: everything is JSON in lit
	lit    []byte      // JSON not yet compressed
	z      []byte      // the frames so far
	first  bool        // no field written yet
}

func (m *msgEncoder) encode(resp *tailcfg.MapResponse, peers, changed listPlan) error {
	rest := *resp
	rest.Node, rest.Peers, rest.PeersChanged = nil, nil, nil
	head, err := json.Marshal(&rest)
	if err != nil {
		return fmt.Errorf("encoding map response: %w", err)
	}
	m.lit = append(m.lit, head[:len(head)-1]...) // without its closing brace
	m.first = len(head) == 2
	if resp.Node != nil {
		self, err := m.c.encoded(resp.Node)
		if err != nil {
			return fmt.Errorf("encoding the view of node %d: %w", resp.Node.ID, err)
		}
		m.field("Node")
		m.lit = append(m.lit, self...)
	}
	if err := m.list("Peers", resp.Peers, peers); err != nil {
		return err
	}
	if err := m.list("PeersChanged", resp.PeersChanged, changed); err != nil {
		return err
	}
	m.lit = append(m.lit, '}')
	if m.chunks != nil {
		m.z = appendFrame(m.z, m.lit)
	}
	return nil
}

func (m *msgEncoder) field(name string) {
	if !m.first {
		m.lit = append(m.lit, ',')
	}
	m.first = false
	m.lit = append(m.lit, '"')
	m.lit = append(m.lit, name...)
	m.lit = append(m.lit, '"', ':')
}

// list writes views as the field name (omitted when empty, as
// json.Marshal does), the runs of p as cached chunks.
func (m *msgEncoder) list(name string, views []*tailcfg.Node, p listPlan) error {
	if len(views) == 0 {
		return nil
	}
	enc := make([][]byte, len(views))   // the views written as JSON here
	runs := make([][]byte, len(p.runs)) // the runs' cached frames
	n, zn, r := len(views)+1, 0, 0
	for i := 0; i < len(views); i++ {
		if r < len(p.runs) && p.runs[r].start == i {
			run := p.runs[r]
			z, err := m.chunks.get(run.rng, p.entries[run.start:run.end])
			if err != nil {
				return err
			}
			runs[r], zn = z, zn+len(z)
			i = run.end - 1
			r++
			continue
		}
		j, err := m.viewJSON(views[i], p.entries, i)
		if err != nil {
			return err
		}
		enc[i] = j
		n += len(j)
	}
	m.field(name)
	m.lit = slices.Grow(m.lit, n)
	m.lit = append(m.lit, '[')
	if zn > 0 {
		// The runs, and room for the rest compressed (JSON shrinks to
		// about a fifth), so the message grows about once.
		m.z = slices.Grow(m.z, zn+(len(m.lit)+n)/4+64)
	}
	r = 0
	for i := 0; i < len(views); i++ {
		if r < len(p.runs) && p.runs[r].start == i {
			if len(m.lit) > 0 {
				m.z = appendFrame(m.z, m.lit)
				m.lit = m.lit[:0]
			}
			m.z = append(m.z, runs[r]...)
			i = p.runs[r].end - 1
			r++
			continue
		}
		m.lit = append(m.lit, enc[i]...)
		if i < len(views)-1 {
			m.lit = append(m.lit, ',')
		}
	}
	m.lit = append(m.lit, ']')
	return nil
}

// viewJSON is the encoding of views[i], entries[i] its cache entry when
// known.
func (m *msgEncoder) viewJSON(v *tailcfg.Node, entries []*encodedView, i int) ([]byte, error) {
	if v == nil {
		return []byte("null"), nil
	}
	var j []byte
	var err error
	if entries != nil && entries[i] != nil {
		j, err = entries[i].encode()
	} else {
		j, err = m.c.encoded(v)
	}
	if err != nil {
		return nil, fmt.Errorf("encoding the view of node %d: %w", v.ID, err)
	}
	return j, nil
}

// frameCache shares the compression of small messages that many sessions
// send alike: when a node joins or changes, every peer gets the same delta
// (its new view, nothing else), and compressing it once instead of once
// per session is most of a registration storm's encoding work. Entries
// are immutable; the cache is dropped whole when it fills up. The zero
// value is an empty cache.
type frameCache struct {
	mu   sync.Mutex // guards the field below
	m    map[uint64]*compressedFrame
	seed maphash.Seed
}

type compressedFrame struct{ json, z []byte }

// Limits of frameCache: larger messages are unlikely to repeat (full
// netmaps differ per node), and entries are dropped in bulk.
const (
	frameCacheMaxJSON    = 16 << 10
	frameCacheMaxEntries = 512
)

// compress returns msg zstd-compressed, from the cache when an equal
// message was compressed before. The result is shared: never modify it.
func (c *frameCache) compress(msg []byte) []byte {
	if len(msg) > frameCacheMaxJSON {
		return zstdframe.AppendEncode(nil, msg, zstdframe.FastestCompression)
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[uint64]*compressedFrame{}
		c.seed = maphash.MakeSeed()
	}
	h := maphash.Bytes(c.seed, msg)
	e := c.m[h]
	c.mu.Unlock()
	if e != nil && bytes.Equal(e.json, msg) {
		return e.z
	}
	e = &compressedFrame{json: bytes.Clone(msg), z: zstdframe.AppendEncode(nil, msg, zstdframe.FastestCompression)}
	c.mu.Lock()
	if len(c.m) >= frameCacheMaxEntries {
		clear(c.m)
	}
	c.m[h] = e
	c.mu.Unlock()
	return e.z
}
