package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// Limits bound what one node or machine can make the server and its peers
// do. The zero value means the defaults documented on each field;
// docs/server.md ("Limits") explains each choice.
type Limits struct {
	// UpdateInterval is the shortest time between two applications of one
	// node's map-request state (endpoints, disco key, home DERP, hostinfo).
	// A request arriving sooner is held, later ones replace it, and the
	// newest is applied when the interval is over: peers get at most one
	// update of the node per interval, and the last one always arrives.
	// Zero means 1 s.
	UpdateInterval time.Duration
	// WriteTimeout is how long writing one map message may take. A write
	// that does not finish in time fails, and the session ends (the
	// client reconnects). Zero means 60 s.
	WriteTimeout time.Duration
	// MaxStreamsPerMachine is how many streaming map sessions one machine
	// key may hold at once, over all its nodes; a further one closes the
	// machine's oldest. Zero means 4.
	MaxStreamsPerMachine int
}

// Defaults of Limits.
const (
	defaultUpdateInterval       = time.Second
	defaultWriteTimeout         = 60 * time.Second
	defaultMaxStreamsPerMachine = 4
)

// withDefaults fills in the documented defaults of l.
func (l Limits) withDefaults() Limits {
	if l.UpdateInterval <= 0 {
		l.UpdateInterval = defaultUpdateInterval
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = defaultWriteTimeout
	}
	if l.MaxStreamsPerMachine <= 0 {
		l.MaxStreamsPerMachine = defaultMaxStreamsPerMachine
	}
	return l
}

// Fixed caps on what a client may report. A Tailscale v1.102.5 tailscaled
// sends about 0.7–0.9 KB of Hostinfo (advertising routes and an exit
// node) and a handful of endpoints; the caps leave ample room above that.
const (
	maxHostinfoBytes = 16 << 10 // JSON-encoded, NetInfo included
	maxEndpoints     = 128
	maxRoutableIPs   = 512 // advertised routes
	maxServices      = 128
	maxRequestTags   = 64
	maxSSHHostKeys   = 16
	maxWoLMACs       = 16
)

// checkHostinfo reports why hi is refused, or nil. Nothing of a refused
// request is stored or relayed.
func checkHostinfo(hi *tailcfg.Hostinfo) error {
	if hi == nil {
		return nil
	}
	lists := []struct {
		what string
		n    int
		max  int
	}{
		{"advertised routes (RoutableIPs)", len(hi.RoutableIPs), maxRoutableIPs},
		{"services", len(hi.Services), maxServices},
		{"requested tags", len(hi.RequestTags), maxRequestTags},
		{"SSH host keys", len(hi.SSH_HostKeys), maxSSHHostKeys},
		{"Wake-on-LAN MACs", len(hi.WoLMACs), maxWoLMACs},
	}
	for _, l := range lists {
		if l.n > l.max {
			return fmt.Errorf("hostinfo lists %d %s, more than the %d allowed", l.n, l.what, l.max)
		}
	}
	b, err := json.Marshal(hi)
	if err != nil {
		return fmt.Errorf("hostinfo cannot be encoded: %v", err)
	}
	if len(b) > maxHostinfoBytes {
		return fmt.Errorf("hostinfo is %d bytes of JSON, more than the %d allowed", len(b), maxHostinfoBytes)
	}
	return nil
}

// checkMapRequest reports why the runtime state a map request carries is
// refused, or nil.
func checkMapRequest(req *tailcfg.MapRequest) error {
	if len(req.Endpoints) > maxEndpoints {
		return fmt.Errorf("map request lists %d endpoints, more than the %d allowed", len(req.Endpoints), maxEndpoints)
	}
	return checkHostinfo(req.Hostinfo)
}

// updateLimit is one node's map-request rate limit; owner goroutine only.
type updateLimit struct {
	last    time.Time           // when a request's state was last applied
	pending *tailcfg.MapRequest // newest held request, merged; nil when none
	timer   *time.Timer         // applies pending; nil when none is scheduled
}

// admitMapRequest applies req's runtime state to n now, or holds it until
// UpdateInterval after the last application when that was too recent. A
// held request is replaced by newer ones, so only the latest state is
// applied, and peers get one update for the whole burst.
func (w *world) admitMapRequest(n *node, req *tailcfg.MapRequest) {
	l := &n.upd
	interval := w.srv.limits.UpdateInterval
	now := time.Now() // real time: the limit is a rate, not a tailnet clock
	if l.pending == nil && (l.last.IsZero() || now.Sub(l.last) >= interval) {
		l.last = now
		w.applyMapRequest(n, req)
		return
	}
	l.pending = mergeMapRequest(l.pending, req)
	if l.timer == nil {
		id, srv := n.id, w.srv
		l.timer = time.AfterFunc(l.last.Add(interval).Sub(now), func() { srv.applyHeld(id) })
	}
}

// applyHeld applies node id's held map request, on the owner goroutine.
func (s *Server) applyHeld(id tailcfg.NodeID) {
	s.do(context.Background(), func(w *world) error {
		w.applyHeld(id)
		return nil
	})
}

func (w *world) applyHeld(id tailcfg.NodeID) {
	n := w.nodes[id]
	if n == nil {
		return // removed meanwhile
	}
	l := &n.upd
	req := l.pending
	l.pending, l.timer = nil, nil
	// A request authenticated by a key the node no longer has, or for a
	// node that logged out or expired meanwhile, is dropped; the client's
	// next request carries its current state.
	if req == nil || req.NodeKey != n.nodeKey || n.loggedOut || w.keyExpired(n, w.srv.now()) {
		return
	}
	l.last = time.Now()
	w.applyMapRequest(n, req)
}

// mergeMapRequest returns the state applyMapRequest reads from newer, with
// what newer leaves unset (disco key, hostinfo, NetInfo) taken from older.
// Neither argument is modified.
func mergeMapRequest(older, newer *tailcfg.MapRequest) *tailcfg.MapRequest {
	m := &tailcfg.MapRequest{
		NodeKey:   newer.NodeKey,
		Version:   newer.Version,
		DiscoKey:  newer.DiscoKey,
		Endpoints: newer.Endpoints,
		Hostinfo:  newer.Hostinfo,
	}
	if older == nil {
		return m
	}
	if m.DiscoKey.IsZero() {
		m.DiscoKey = older.DiscoKey
	}
	switch {
	case m.Hostinfo == nil:
		m.Hostinfo = older.Hostinfo
	case m.Hostinfo.NetInfo == nil && older.Hostinfo != nil && older.Hostinfo.NetInfo != nil:
		hi := m.Hostinfo.Clone()
		hi.NetInfo = older.Hostinfo.NetInfo
		m.Hostinfo = hi
	}
	return m
}

// addStream records sess, node n's new streaming session, under n's
// machine key and closes the machine's oldest open sessions beyond
// MaxStreamsPerMachine. Closed sessions stay listed until their handler
// ends (dropStream) but do not count.
func (w *world) addStream(n *node, sess *session) {
	if w.streams == nil {
		w.streams = map[key.MachinePublic][]*session{}
	}
	w.srv.counts.sessions.Add(1)
	sess.machine = n.machine
	list := append(w.streams[n.machine], sess)
	open := 0
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].isClosed() {
			continue
		}
		if open++; open > w.srv.limits.MaxStreamsPerMachine {
			w.srv.logf("control: machine %s has more than %d map streams; closing the oldest, of node %d",
				n.machine.ShortString(), w.srv.limits.MaxStreamsPerMachine, list[i].nodeID)
			list[i].close("too many map streams from this machine")
		}
	}
	w.streams[n.machine] = list
}

// dropStream forgets sess, whose handler ended.
func (w *world) dropStream(sess *session) {
	list := slices.DeleteFunc(w.streams[sess.machine], func(x *session) bool { return x == sess })
	if len(list) == 0 {
		delete(w.streams, sess.machine)
		return
	}
	w.streams[sess.machine] = list
}

// mapWriter writes one response's map messages, each within the write
// deadline. A write that does not finish in time fails (over HTTP/2 the
// stream is reset), which ends the session.
//
// Setting a deadline costs a round trip to the HTTP/2 connection's
// goroutine, so it is not set and cleared around every message: a
// deadline of WriteTimeout is kept while it leaves at least 7/8 of
// WriteTimeout, so each write gets between 7/8 of and the whole
// WriteTimeout. Over HTTP/2 a deadline that passes between writes resets
// the stream even when nothing is being written; a kept deadline cannot,
// as long as the stream writes again in time: keep-alives come sooner
// than that (otherwise the deadline is cleared after every message), and
// the stream calls idle before work that may take long (a full netmap).
type mapWriter struct {
	s        *Server
	rc       *http.ResponseController
	w        http.ResponseWriter
	compress bool
	deadline time.Time // set on rc; zero: none
}

func (s *Server) newMapWriter(rc *http.ResponseController, w http.ResponseWriter, compress bool) *mapWriter {
	return &mapWriter{s: s, rc: rc, w: w, compress: compress}
}

func (m *mapWriter) write(resp *tailcfg.MapResponse) error {
	b, err := m.s.encodeFrame(resp, m.compress)
	if err != nil {
		return err
	}
	return m.send(b)
}

// writeFull builds node id's full netmap for sess off the owner goroutine
// (snapshotMap), with ping, and writes it. Building and encoding hold one
// of fullMapSlots, so only that many full netmaps are in the making at
// once; the write does not, so a slow client holds none. ok is false
// when the session or ctx ended first.
func (m *mapWriter) writeFull(ctx context.Context, sess *session, id tailcfg.NodeID, ping *tailcfg.PingRequest) (ok bool, err error) {
	b, err := m.encodeFull(ctx, sess, id, ping)
	if b == nil || err != nil {
		return false, err
	}
	return true, m.send(b)
}

func (m *mapWriter) encodeFull(ctx context.Context, sess *session, id tailcfg.NodeID, ping *tailcfg.PingRequest) ([]byte, error) {
	select {
	case fullMapSlots <- struct{}{}:
		defer func() { <-fullMapSlots }()
	case <-ctx.Done():
		return nil, nil
	case <-sess.done:
		return nil, nil
	}
	resp := m.s.snapshotMap(sess, id)
	if resp == nil {
		return nil, nil
	}
	resp.PingRequest = ping
	return m.s.encodeFrame(resp, m.compress)
}

// send writes an encoded message within the write deadline.
func (m *mapWriter) send(b []byte) error {
	timeout := m.s.limits.WriteTimeout
	keep := timeout - timeout/8
	if now := time.Now(); m.deadline.Sub(now) < keep {
		m.deadline = now.Add(timeout)
		// Unsupported (ErrNotSupported) only off the real transports, e.g.
		// with a recorder in fuzz tests; the write then has no deadline.
		_ = m.rc.SetWriteDeadline(m.deadline)
	}
	if err := writeFrame(m.w, b); err != nil {
		return err
	}
	if m.s.keepAlive >= keep {
		m.idle() // the stream may stay silent past the deadline
	}
	return nil
}

// idle clears the write deadline, before the stream may go without writing
// for a while.
func (m *mapWriter) idle() {
	if !m.deadline.IsZero() {
		m.deadline = time.Time{}
		_ = m.rc.SetWriteDeadline(time.Time{})
	}
}

// abortOnClose makes a write on rc that is blocked when sess is closed
// (replaced, evicted, logged out) fail at once, so the session's goroutine
// ends and its encoded message is freed without waiting for the write
// deadline. It costs no goroutine while the session lasts (one runs when
// the session closes, so that close never waits on HTTP/2). Call stop
// before the handler returns; rc is not touched after.
func abortOnClose(rc *http.ResponseController, sess *session) (stop func()) {
	var mu sync.Mutex // guards stopped, and holds rc while it is touched
	stopped := false
	fire := func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			// A deadline in the past resets the HTTP/2 stream now.
			_ = rc.SetWriteDeadline(time.Unix(1, 0))
		}
	}
	sess.setOnClose(func() { go fire() })
	return func() {
		sess.setOnClose(nil)
		mu.Lock()
		stopped = true
		mu.Unlock()
	}
}
