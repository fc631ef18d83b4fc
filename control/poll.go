package control

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// mapError is a map request rejection with its HTTP status.
type mapError struct {
	code int
	msg  string
}

func (e *mapError) Error() string { return e.msg }

// serveMap handles POST /machine/map over Noise: endpoint and hostinfo
// updates (non-streaming) and the long-lived netmap stream.
func (s *Server) serveMap(w http.ResponseWriter, r *http.Request) {
	mkey := machineKeyOf(r)
	var req tailcfg.MapRequest
	if err := readJSON(w, r, &req); err != nil {
		http.Error(w, "tailplane: map: "+err.Error(), http.StatusBadRequest)
		return
	}
	if req.Version < MinCapabilityVersion {
		http.Error(w, tooOldMessage(req.Version), http.StatusBadRequest)
		return
	}
	if err := checkMapRequest(&req); err != nil {
		s.logf("control: map request from %s rejected: %v", mkey.ShortString(), err)
		http.Error(w, "tailplane: map: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	var sess *session
	var first *tailcfg.MapResponse
	snapshot := false // first is built off the owner goroutine, from its published state
	var nodeID tailcfg.NodeID
	err := s.do(ctx, func(w *world) error {
		n, err := w.startMap(mkey, &req)
		if err != nil {
			return err
		}
		nodeID = n.id
		if !req.Stream {
			if !req.OmitPeers {
				first = w.fullMap(n, false)
			}
			return nil
		}
		if n.sess != nil {
			n.sess.close("replaced by a newer map request")
		}
		sess = newSession(n.id)
		sess.host = r.Host
		n.sess = sess
		w.addStream(n, sess)
		if w.keyExpired(n, s.now()) {
			first = w.fullMap(n, true) // the expired netmap; no deltas follow
			return nil
		}
		w.live[n.id] = n
		w.streamStarted(n)
		w.claimLocal(n)
		if !n.online {
			n.online = true
			on := true
			w.onlineChanged(n, &tailcfg.PeerChange{NodeID: n.id, Online: &on})
		}
		sess.resetForFull(nil, nil) // the owner's whole share of the first netmap
		snapshot = true
		return nil
	})
	if err != nil {
		var me *mapError
		if errors.As(err, &me) {
			s.logf("control: map request from %s rejected: %s", mkey.ShortString(), me.msg)
			http.Error(w, "tailplane: "+me.msg, me.code)
			return
		}
		http.Error(w, "tailplane: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	compress := req.Compress == "zstd"
	if first == nil && !snapshot {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	rc := http.NewResponseController(w)
	mw := s.newMapWriter(rc, w, compress)
	if sess == nil {
		mw.write(first)
		return
	}
	defer s.endSession(nodeID, sess)
	stop := abortOnClose(rc, sess)
	defer stop()
	if snapshot {
		if ok, err := mw.writeFull(ctx, sess, nodeID, nil); !ok || err != nil {
			return
		}
	} else if err := mw.write(first); err != nil {
		return
	}
	s.stream(ctx, mw, sess, nodeID)
}

// stream sends queued changes and keep-alives until the client goes away
// or the server ends the session.
func (s *Server) stream(ctx context.Context, mw *mapWriter, sess *session, id tailcfg.NodeID) {
	keepAlive := time.NewTicker(s.keepAlive)
	defer keepAlive.Stop()
	var lastWrite time.Time
	for {
		var resp *tailcfg.MapResponse
		var gen uint64 // config generation of a full netmap; see propagation
		select {
		case <-ctx.Done():
			return
		case <-sess.done:
			return
		case <-keepAlive.C:
			resp = &tailcfg.MapResponse{KeepAlive: true}
		case <-sess.wake:
			if !pace(ctx, sess, lastWrite) {
				return
			}
			d := sess.take()
			if !d.full && d.resync.pending {
				s.resolveResync(sess, id, &d)
			}
			if d.full {
				var ok bool
				if gen, ok = s.sendFull(ctx, mw, sess, id, d.ping); !ok {
					return
				}
				s.prop.delivered(sess, gen)
				keepAlive.Reset(s.keepAlive)
				lastWrite = time.Now()
				continue
			}
			gen = d.resync.gen
			if !d.empty() {
				resp = s.deltaMap(d)
				sess.noteSent(&d)
			}
		}
		if resp == nil {
			continue
		}
		if err := mw.write(resp); err != nil {
			return
		}
		s.prop.delivered(sess, gen)
		keepAlive.Reset(s.keepAlive)
		lastWrite = time.Now()
	}
}

// streamPace is the shortest time between two messages of one stream.
// A change that wakes a session which wrote less than this ago waits
// out the rest, and whatever else arrives meanwhile goes into the same
// message: in a registration or reconnect storm every node changes every
// peer's map, and writing each change on its own costs a message per
// peer per change, each with its own fixed costs (encoding the message
// around the views, compression, HTTP/2 and Noise framing, a write) on
// the server and the client alike. A session that wrote nothing for
// streamPace writes at once. 250 ms: at most four map updates a second
// reach a client, while a change that comes alone (not within 250 ms of
// the stream's last message, a keep-alive included) is not delayed; at
// 1,000 nodes in a full mesh it made a
// registration storm 4.8 times fewer messages and 30 % less server CPU
// than 25 ms (docs/performance.md).
const streamPace = 250 * time.Millisecond

// pace waits until streamPace has passed since last; false when the
// session or ctx ended meanwhile.
func pace(ctx context.Context, sess *session, last time.Time) bool {
	wait := streamPace - time.Since(last)
	if last.IsZero() || wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-sess.done:
		return false
	}
}

// sendFull writes node id's full netmap, with ping, to sess, and returns
// the config generation it was built from (see propagation). The owner
// goroutine only resets the session's queue; the netmap is built off it
// (mapWriter.writeFull), except an expired node's. ok is false when the
// session ended or the write failed.
func (s *Server) sendFull(ctx context.Context, mw *mapWriter, sess *session, id tailcfg.NodeID, ping *tailcfg.PingRequest) (gen uint64, ok bool) {
	mw.idle() // building it may take long
	var expired *tailcfg.MapResponse
	err := s.do(ctx, func(w *world) error {
		n := w.nodes[id]
		if n == nil || n.sess != sess {
			return errors.New("session ended")
		}
		if w.keyExpired(n, s.now()) {
			expired = w.fullMap(n, true)
		} else {
			sess.resetForFull(nil, nil) // built below
		}
		gen = s.prop.current()
		return nil
	})
	if err != nil {
		return 0, false
	}
	if expired != nil {
		expired.PingRequest = ping
		return gen, mw.write(expired) == nil
	}
	ok, err = mw.writeFull(ctx, sess, id, ping)
	return gen, ok && err == nil
}

// endSession marks the node offline if sess is still its current session.
func (s *Server) endSession(id tailcfg.NodeID, sess *session) {
	sess.close("client disconnected")
	s.prop.forget(sess)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.do(ctx, func(w *world) error {
		w.dropStream(sess)
		n := w.nodes[id]
		if n == nil || n.sess != sess {
			return nil
		}
		if err := w.leave(ctx, n, disconnecting, "client disconnected", false); err != nil {
			s.logf("control: saving last-seen of node %d: %v", id, err)
		}
		return nil
	})
}

// onlineChanged tells n's peers it came or went. For a subnet router that
// is also a policy change: only online routers' subnets are routed, so an
// HA pair fails over to the online one.
func (w *world) onlineChanged(n *node, pc *tailcfg.PeerChange) {
	w.fanout(n)
	if routesSubnets(n) {
		w.membershipChanged(n, false)
		return
	}
	w.publishPatch(n, pc)
}

// startMap authenticates a map request and applies the runtime state it
// carries (disco key, endpoints, home DERP, hostinfo).
func (w *world) startMap(mkey key.MachinePublic, req *tailcfg.MapRequest) (*node, error) {
	if req.NodeKey.IsZero() {
		return nil, &mapError{http.StatusBadRequest, "map request has no node key"}
	}
	n, err := w.noiseNode(mkey, req.NodeKey)
	if err != nil {
		return nil, err
	}
	if w.keyExpired(n, w.srv.now()) {
		if !n.view.Expired {
			w.cutOffExpired(n)
		}
		if !req.Stream && req.OmitPeers {
			return nil, errKeyExpired
		}
		return n, nil // nothing the request carries is applied
	}
	w.admitMapRequest(n, req) // applied now, or held by the update interval
	return n, nil
}

func (w *world) applyMapRequest(n *node, req *tailcfg.MapRequest) {
	pc := &tailcfg.PeerChange{NodeID: n.id}
	patched, full, save, routesChanged := false, false, false, false
	if !req.DiscoKey.IsZero() && req.DiscoKey != n.disco {
		n.disco = req.DiscoKey
		dk := req.DiscoKey
		pc.DiscoKey = &dk
		patched, save = true, true
	}
	if !slices.Equal(req.Endpoints, n.endpoints) {
		n.endpoints = slices.Clone(req.Endpoints)
		if len(n.endpoints) == 0 {
			full = true // an empty Endpoints patch would read as "unchanged"
		} else {
			pc.Endpoints = n.endpoints
			patched = true
		}
	}
	if req.Version != n.capVer {
		n.capVer = req.Version
		pc.Cap = req.Version
		patched = true
	}
	if hi := req.Hostinfo; hi != nil {
		if ni := hi.NetInfo; ni != nil && ni.PreferredDERP > 0 && ni.PreferredDERP != n.homeDERP {
			n.homeDERP = ni.PreferredDERP
			pc.DERPRegion = ni.PreferredDERP
			patched = true
		}
		clean := hi.Clone()
		clean.NetInfo = nil
		if !clean.Equal(n.hostinfo) {
			routesChanged = !slices.Equal(clean.RoutableIPs, n.hostinfo.RoutableIPs)
			n.hostinfo = clean
			full, save = true, true
		}
	}
	if save {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := w.saveNodeSeen(ctx, n); err != nil {
			w.srv.logf("control: saving node %d: %v", n.id, err)
		}
		cancel()
	}
	if patched || full {
		w.fanout(n)
	}
	switch {
	case routesChanged:
		// Advertised routes feed route approval and primary election.
		w.membershipChanged(n, false)
	case full:
		w.publishChanged(n)
	case patched:
		w.publishPatch(n, pc)
	}
}

// encodeFrame encodes one map message: the (optionally zstd-compressed)
// JSON, with node views taken from s.views (see viewCache.encodeMap),
// runs of peer views many messages share compressed once (s.chunks, see
// chunks.go) and small messages compressed through s.frames. The result may be shared:
// never modify it.
func (s *Server) encodeFrame(resp *tailcfg.MapResponse, compress bool) ([]byte, error) {
	if compress {
		if z, ok, err := s.views.encodeChunked(resp, &s.chunks); err != nil || ok {
			return z, err
		}
	}
	jb := frameBufs.Get().(*[]byte)
	b, err := s.views.encodeMap((*jb)[:0], resp)
	if err != nil || !compress {
		if err != nil {
			frameBufs.Put(jb)
		}
		return b, err
	}
	// The JSON is garbage once compressed; what is written is not
	// recycled, as the transport may still hold it after a failed write.
	*jb = b
	z := s.frames.compress(b)
	frameBufs.Put(jb)
	return z, nil
}

// writeFrame writes one encoded map message, after its 4-byte
// little-endian length.
func writeFrame(w http.ResponseWriter, b []byte) error {
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

// frameBufs recycles the JSON buffers of compressed messages: a full
// netmap is hundreds of kilobytes of JSON.
var frameBufs = sync.Pool{New: func() any { return new([]byte) }}
