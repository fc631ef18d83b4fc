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
	e := &encodedView{v: v}
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
	e.once.Do(func() { e.b, e.err = json.Marshal(v) })
	return e.b, e.err
}

// encodeMap appends resp as JSON to buf. It decodes to what
// json.Marshal(resp) decodes to; the node views in it (Node, Peers,
// PeersChanged) are copied from the cache instead of being encoded again,
// and they come last.
func (c *viewCache) encodeMap(buf []byte, resp *tailcfg.MapResponse) ([]byte, error) {
	rest := *resp
	rest.Node, rest.Peers, rest.PeersChanged = nil, nil, nil
	head, err := json.Marshal(&rest)
	if err != nil {
		return nil, fmt.Errorf("encoding map response: %w", err)
	}
	head = head[:len(head)-1] // without its closing brace
	var self []byte
	if resp.Node != nil {
		if self, err = c.encoded(resp.Node); err != nil {
			return nil, fmt.Errorf("encoding the view of node %d: %w", resp.Node.ID, err)
		}
	}
	peers, np, err := c.encodedList(resp.Peers)
	if err != nil {
		return nil, err
	}
	changed, nc, err := c.encodedList(resp.PeersChanged)
	if err != nil {
		return nil, err
	}
	buf = slices.Grow(buf, len(head)+len(self)+np+nc+64)
	buf = append(buf, head...)
	first := len(head) == 1
	field := func(name string) {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, '"')
		buf = append(buf, name...)
		buf = append(buf, '"', ':')
	}
	if self != nil {
		field("Node")
		buf = append(buf, self...)
	}
	for _, l := range []struct {
		name  string
		views [][]byte
	}{{"Peers", peers}, {"PeersChanged", changed}} {
		if len(l.views) == 0 {
			continue // omitempty, as json.Marshal does
		}
		field(l.name)
		buf = append(buf, '[')
		for i, j := range l.views {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, j...)
		}
		buf = append(buf, ']')
	}
	return append(buf, '}'), nil
}

// encodedList returns the encodings of views and their total length with
// separators.
func (c *viewCache) encodedList(views []*tailcfg.Node) ([][]byte, int, error) {
	if len(views) == 0 {
		return nil, 0, nil
	}
	out := make([][]byte, len(views))
	n := len(views) + 1
	for i, v := range views {
		if v == nil {
			out[i] = []byte("null")
		} else {
			j, err := c.encoded(v)
			if err != nil {
				return nil, 0, fmt.Errorf("encoding the view of node %d: %w", v.ID, err)
			}
			out[i] = j
		}
		n += len(out[i])
	}
	return out, n, nil
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
