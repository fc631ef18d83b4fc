package control

import (
	"cmp"
	"maps"
	"math/bits"
	"reflect"
	"slices"

	"github.com/tailplane/tailplane/policy"
	"tailscale.com/tailcfg"
)

// A config change (Install) reaches a connected node as a delta, not as a
// full netmap, unless it changes the domain or dns.https (every node's
// name or own view): the owner re-evaluates the policy, keeps every
// node's view that came out equal, and queues on each session a resync
// (queueResync) naming the nodes whose views changed and which of the
// DNS config, DERP map and user profiles changed. The session's goroutine
// then compares the peers its client holds (session.held) with those the
// latest policy result gives it (resolveResync): peers new to it and held
// peers whose view changed go out in PeersChanged, peers it lost in
// PeersRemoved, its packet filter always (so every connected node gets
// one message per config, as it did with full netmaps), its SSH policy if
// it changed, all from the node's policy view computed on the session's
// goroutine, and the changed config parts. A commit that changes one rule
// thus sends each node its new filter, a few hundred bytes, instead of a
// netmap with every peer.

// idSet is a set of node IDs, kept as bitsets of 4,096 IDs (512 bytes)
// for the ranges of IDs it holds, so its size follows the spread of its
// members, not the largest ID: the peers of a group the store numbered
// together fit in a block or two. The zero value is empty.
type idSet struct {
	blocks []idBlock // sorted by base
}

type idBlock struct {
	base int64 // the IDs base*idBlockBits up to (base+1)*idBlockBits-1
	bits *[idBlockBits / 64]uint64
}

const idBlockBits = 4096

func idBlockOf(id tailcfg.NodeID) (base int64, bit int) {
	return int64(id) >> 12, int(uint64(id) & (idBlockBits - 1))
}

func (s *idSet) find(base int64) (int, bool) {
	if n := len(s.blocks); n > 0 && s.blocks[n-1].base <= base { // IDs mostly come in order
		if s.blocks[n-1].base == base {
			return n - 1, true
		}
		return n, false
	}
	return slices.BinarySearchFunc(s.blocks, base, func(b idBlock, base int64) int { return cmp.Compare(b.base, base) })
}

func (s *idSet) add(id tailcfg.NodeID) {
	base, bit := idBlockOf(id)
	i, ok := s.find(base)
	if !ok {
		s.blocks = slices.Insert(s.blocks, i, idBlock{base: base, bits: new([idBlockBits / 64]uint64)})
	}
	s.blocks[i].bits[bit/64] |= 1 << (bit % 64)
}

func (s *idSet) remove(id tailcfg.NodeID) {
	base, bit := idBlockOf(id)
	if i, ok := s.find(base); ok {
		s.blocks[i].bits[bit/64] &^= 1 << (bit % 64)
	}
}

func (s *idSet) has(id tailcfg.NodeID) bool {
	if s == nil {
		return false
	}
	base, bit := idBlockOf(id)
	i, ok := s.find(base)
	return ok && s.blocks[i].bits[bit/64]&(1<<(bit%64)) != 0
}

// reset empties the set.
func (s *idSet) reset() { s.blocks = nil }

// each calls f with every member, in increasing order.
func (s *idSet) each(f func(tailcfg.NodeID)) {
	for _, b := range s.blocks {
		for i, w := range b.bits {
			for w != 0 {
				j := bits.TrailingZeros64(w)
				w &^= 1 << j
				f(tailcfg.NodeID(b.base*idBlockBits + int64(i*64+j)))
			}
		}
	}
}

// pendingResync is a config change a session has yet to send.
type pendingResync struct {
	pending bool
	gen     uint64 // the config generation it brings (see propagation); 0 before the first Install
	// changed lists, per config installed since the last message, the
	// nodes whose views that config changed; shared, never modified.
	changed []*idSet
	configParts
}

// configParts is what a config change changed of the netmap's config
// part; every resync of that change carries it.
type configParts struct {
	derpMap  bool                  // the DERP map changed: send the published one
	dns      bool                  // the DNS config changed: send the node's
	profiles []tailcfg.UserProfile // user profiles that are new or changed
}

// maxPendingResyncs bounds pendingResync.changed: a session that lags
// further behind gets a full netmap instead.
const maxPendingResyncs = 8

// touches reports whether a pending config changed node id's view.
func (r *pendingResync) touches(id tailcfg.NodeID) bool {
	for _, c := range r.changed {
		if c.has(id) {
			return true
		}
	}
	return false
}

// queueResync queues the config change of generation gen, which changed
// the views of the nodes in changed (shared, never modified), as a delta;
// self, when not nil, is the node's own new view. It does not wake the
// session: the owner queues every session first and then pokes them, so
// that thousands of woken sessions do not slow its loop down.
func (s *session) queueResync(changed *idSet, gen uint64, self *tailcfg.Node, parts *configParts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if len(s.resync.changed) >= maxPendingResyncs {
		s.full = true // supersedes the resync (take and resetForFull drop it)
	}
	r := &s.resync
	r.pending, r.gen = true, gen
	r.changed = append(r.changed, changed)
	r.derpMap = r.derpMap || parts.derpMap
	r.dns = r.dns || parts.dns
	r.profiles = append(r.profiles, parts.profiles...)
	if self != nil {
		s.selfView = self
	}
}

// resyncMaxViews is how many views a resync may resend before a full
// netmap is sent instead, if that is more than half of the node's peers:
// a full netmap is as large then and is built under fullMapSlots, which
// bounds the memory of many at once.
const resyncMaxViews = 64

// resolveResync turns d's pending config change into the node's packet
// filter and its changed and removed peers: it takes the client of sess
// (node id) from the peers it holds to those the latest policy result
// gives it, with the current view of every peer it gains or whose view
// changed, and drops queued changes of peers it no longer sees. It sets d.full instead when node id has no policy
// view (it is not in the inventory: a full netmap says what it gets) or
// when the delta would resend most views. Session goroutine.
func (s *Server) resolveResync(sess *session, id tailcfg.NodeID, d *pendingDelta) {
	var v *policy.NodeView
	if res := s.policyRes.Load(); res != nil {
		v = res.Node(id)
	}
	if v == nil {
		d.full = true
		return
	}
	// The filter always goes out, so every node hears of every config
	// (one message each, as with full netmaps) and holds its filter.
	ssh := sshMessage(v.SSH)
	sess.mu.Lock()
	sess.lastFilter = v.PacketFilter
	if !reflect.DeepEqual(ssh, sess.lastSSH) {
		d.ssh, sess.lastSSH = ssh, ssh
	}
	sess.mu.Unlock()
	d.filter, d.filterSet = v.PacketFilter, true
	s.resyncConfigParts(id, d)
	peers := s.views.currentOf(v.Peers, id)
	var target idSet
	resend := 0
	for _, p := range peers {
		target.add(p.ID)
		_, queued := d.changed[p.ID]
		if queued || d.removed[p.ID] || !sess.held.has(p.ID) || d.resync.touches(p.ID) {
			if d.changed == nil {
				d.changed = map[tailcfg.NodeID]*tailcfg.Node{}
			}
			d.changed[p.ID] = p // current: newer than anything queued
			delete(d.removed, p.ID)
			delete(d.patches, p.ID) // the current view carries them
			resend++
		}
	}
	if resend > resyncMaxViews && resend > len(peers)/2 {
		d.full = true
		return
	}
	for pid := range d.changed {
		if !target.has(pid) {
			delete(d.changed, pid)
		}
	}
	for pid := range d.patches {
		if !target.has(pid) {
			delete(d.patches, pid)
		}
	}
	sess.held.each(func(pid tailcfg.NodeID) {
		if !target.has(pid) {
			if d.removed == nil {
				d.removed = map[tailcfg.NodeID]bool{}
			}
			d.removed[pid] = true
		}
	})
}

// resyncConfigParts puts into d the config parts its resync changed, as
// published now: the DERP map, node id's DNS config, new user profiles.
func (s *Server) resyncConfigParts(id tailcfg.NodeID, d *pendingDelta) {
	r := &d.resync
	d.profiles = r.profiles
	if !r.derpMap && !r.dns {
		return
	}
	base := s.netmap.Load()
	if r.derpMap {
		d.derpMap = base.derpMap
	}
	if r.dns {
		d.dns = base.dns
		if self := s.views.current(id); base.https && self != nil {
			d.dns = dnsWithCert(base.dns, certDomainOf(self))
		}
	}
}

// noteSent records in sess.held what a delta built from d tells the
// client. Session goroutine.
func (sess *session) noteSent(d *pendingDelta) {
	for id := range d.changed {
		sess.held.add(id)
	}
	for id := range d.removed {
		sess.held.remove(id)
	}
}

// netmapShape is what of the config every full netmap carries besides
// the policy's part; a config change that keeps it can be sent as deltas.
type netmapShape struct {
	base     netmapBase
	profiles map[tailcfg.UserID]tailcfg.UserProfile
}

func (w *world) netmapShape() netmapShape {
	return netmapShape{
		base:     netmapBase{derpMap: w.derpMap, dns: w.dns, domain: w.settings.Domain, https: w.tailnet.DNS.HTTPS},
		profiles: *w.profiles,
	}
}

// diff returns what of a changed into b, for deltas; ok is false when
// only full netmaps can say it: the domain (every node's name) or
// dns.https (every node's own view) changed.
func (a netmapShape) diff(b netmapShape) (parts configParts, ok bool) {
	if a.base.domain != b.base.domain || a.base.https != b.base.https {
		return configParts{}, false
	}
	parts.derpMap = !reflect.DeepEqual(a.base.derpMap, b.base.derpMap)
	parts.dns = !reflect.DeepEqual(a.base.dns, b.base.dns)
	for _, id := range slices.Sorted(maps.Keys(b.profiles)) {
		if up, ok := a.profiles[id]; !ok || !reflect.DeepEqual(up, b.profiles[id]) {
			parts.profiles = append(parts.profiles, b.profiles[id])
		}
	}
	return parts, true
}

// configDelta re-evaluates the policy after a config change and sends
// every live node the difference from the config before (whose netmap
// shape was before) as a resync, or, when a delta cannot say it (see
// netmapShape.diff), a full netmap (everythingChanged). Owner goroutine;
// its cost is the evaluation, a view rebuild per node and an enqueue per
// live node.
func (w *world) configDelta(before netmapShape) {
	parts, ok := before.diff(w.netmapShape())
	if !ok {
		w.everythingChanged()
		return
	}
	w.evaluatePolicy()
	changed := &idSet{}
	for _, n := range w.nodes {
		if w.refreshView(n) {
			changed.add(n.id)
		}
	}
	gen := w.srv.prop.current()
	for _, p := range w.live {
		var self *tailcfg.Node
		if changed.has(p.id) {
			self = p.self
		}
		p.sess.queueResync(changed, gen, self, &parts) // with the filter and SSH policy
	}
	for _, p := range w.live {
		p.sess.poke()
	}
}
