package control

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/klauspost/compress/zstd"
	"tailscale.com/tailcfg"
)

// A compressed map message may be several zstd frames one after another:
// clients decode every frame of a message and join what they say
// (zstdframe.AppendDecode, which controlclient uses, documents "zero or
// more frames"). So a run of peer views that many sessions send alike —
// every full netmap of a full mesh carries the same views of the nodes
// in an ID range, and so do the deltas of a registration storm — is
// compressed once into a frame of its own and copied into every message
// that carries it, instead of being compressed again in each session's
// stream. A run is the views of one ID range (chunkIDs IDs); the cache
// knows a run by the exact views in it (their viewCache sequence
// numbers), so a view that changed makes a new run.
//
// Frames are written without their content size (the streaming encoder's
// frame header): a decoder that is told a frame's size grows its output
// to exactly that size for each frame, which would copy a message once
// per frame; without it the output grows by doubling.

// chunkIDs is the ID range of one run; chunkMinViews is the fewest views
// of a range worth a frame of their own (fewer share too little with the
// rest to compress well alone, and are encoded with the message).
const (
	chunkIDs      = 64
	chunkMinViews = 16
)

// Limits of chunkCache: variants of one range kept (most recently used
// first), and compressed bytes held in all, past which the cache is
// dropped whole (ranges of removed nodes are never asked for again).
const (
	chunkVariants = 4
	chunkMaxBytes = 32 << 20
)

// chunkCache holds compressed runs of peer views. The zero value is an
// empty cache.
type chunkCache struct {
	mu    sync.Mutex // guards the fields below
	slots map[int64][]*chunk
	bytes int
	seed  maphash.Seed
}

// chunk is one compressed run: "view,view,...,view," of the views with
// the sequence numbers seqs. Immutable.
type chunk struct {
	sum  uint64
	seqs []uint64
	z    []byte
}

// get returns the compressed run of views (the current entries of one
// range, in order), compressing it when it is not cached.
func (c *chunkCache) get(rng int64, views []*encodedView) ([]byte, error) {
	c.mu.Lock()
	if c.slots == nil {
		c.slots = map[int64][]*chunk{}
		c.seed = maphash.MakeSeed()
	}
	sum := sumSeqs(c.seed, views)
	slot := c.slots[rng]
	for i, ch := range slot {
		if ch.sum == sum && ch.holds(views) {
			copy(slot[1:i+1], slot[:i]) // most recently used first
			slot[0] = ch
			c.mu.Unlock()
			return ch.z, nil
		}
	}
	c.mu.Unlock()

	var n int
	for _, e := range views {
		if _, err := e.encode(); err != nil {
			return nil, fmt.Errorf("encoding the view of node %d: %w", e.v.ID, err)
		}
		n += len(e.b) + 1
	}
	buf := make([]byte, 0, n)
	for _, e := range views {
		buf = append(append(buf, e.b...), ',')
	}
	ch := &chunk{sum: sum, seqs: seqsOf(views), z: appendFrame(nil, buf)}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bytes+len(ch.z) > chunkMaxBytes {
		clear(c.slots)
		c.bytes = 0
	}
	slot = c.slots[rng]
	for _, other := range slot {
		if other.sum == sum && other.holds(views) {
			return other.z, nil // another session compressed it meanwhile
		}
	}
	if len(slot) == chunkVariants {
		c.bytes -= len(slot[len(slot)-1].z)
		slot = slot[:len(slot)-1]
	}
	c.slots[rng] = append([]*chunk{ch}, slot...)
	c.bytes += len(ch.z)
	return ch.z, nil
}

func seqsOf(views []*encodedView) []uint64 {
	seqs := make([]uint64, len(views))
	for i, e := range views {
		seqs[i] = e.seq
	}
	return seqs
}

// sumSeqs hashes the sequence numbers of views.
func sumSeqs(seed maphash.Seed, views []*encodedView) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	var b [8]byte
	for _, e := range views {
		binary.LittleEndian.PutUint64(b[:], e.seq)
		h.Write(b[:])
	}
	return h.Sum64()
}

// holds reports whether ch is the run of exactly views.
func (ch *chunk) holds(views []*encodedView) bool {
	if len(ch.seqs) != len(views) {
		return false
	}
	for i, e := range views {
		if ch.seqs[i] != e.seq {
			return false
		}
	}
	return true
}

// streamEncoders are zstd encoders that write frames without a content
// size (see above), at the fastest level, with a checksum, as zstdframe's
// do otherwise.
var streamEncoders = sync.Pool{New: func() any {
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderCRC(true),
		zstd.WithWindowSize(1<<18),
	)
	if err != nil {
		panic(fmt.Sprintf("control: zstd encoder options: %v", err)) // constant options
	}
	return e
}}

// appendFrame appends src compressed as one zstd frame to dst.
func appendFrame(dst, src []byte) []byte {
	e := streamEncoders.Get().(*zstd.Encoder)
	w := appender{b: dst}
	e.Reset(&w)
	// Writes to an appender cannot fail, and so neither can the encoder.
	// Flush before Close: an input that Close alone encodes is written as
	// one block with its content size in the frame header.
	e.Write(src)
	e.Flush()
	e.Close()
	e.Reset(nil) // let go of w: a pooled encoder must not pin the last message
	streamEncoders.Put(e)
	return w.b
}

type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// listPlan is how one view list of a message is sent: runs[i] is a range
// of views sent as a cached chunk, the rest go into the message's own
// frames.
type listPlan struct {
	entries []*encodedView // nil where a view is not its node's current one
	runs    []viewRun
}

// viewRun is entries[start:end], all of range rng.
type viewRun struct {
	rng        int64
	start, end int
}

// planList finds the runs of views worth a cached chunk: at least
// chunkMinViews current views of one range in a row, never the list's
// last view (which has no comma after it).
func (c *viewCache) planList(views []*tailcfg.Node) listPlan {
	p := listPlan{entries: c.entriesOf(views)}
	for i := 0; i < len(views)-1; {
		if p.entries[i] == nil || views[i] == nil {
			i++
			continue
		}
		rng := int64(views[i].ID) / chunkIDs
		j := i + 1
		for j < len(views)-1 && p.entries[j] != nil && views[j] != nil && int64(views[j].ID)/chunkIDs == rng {
			j++
		}
		if j-i >= chunkMinViews {
			p.runs = append(p.runs, viewRun{rng, i, j})
		}
		i = j
	}
	return p
}

// entriesOf returns the cache entry of every view in views that is its
// node's current view, nil for the others.
func (c *viewCache) entriesOf(views []*tailcfg.Node) []*encodedView {
	out := make([]*encodedView, len(views))
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i, v := range views {
		if v == nil {
			continue
		}
		if e := c.lookupLocked(v.ID); e != nil && e.v == v {
			out[i] = e
		}
	}
	return out
}
