package control

import (
	"reflect"
	"sync"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// session is one streaming map poll. The owner goroutine enqueues changes;
// the poll goroutine drains them into one MapResponse per wake-up, so bursts
// of changes coalesce into one message.
type session struct {
	nodeID  tailcfg.NodeID
	machine key.MachinePublic // set by addStream, before the session is served
	host    string            // the client's name for the server, for ping URLs; set before the session is served
	wake    chan struct{}     // size 1: a pending wake-up is never lost and never piles up
	done    chan struct{}     // closed when the server ends the session

	mu         sync.Mutex // guards the fields below
	closed     bool
	closeMsg   string
	full       bool
	selfView   *tailcfg.Node        // pending new self view
	filterPol  peerPolicy           // non-nil: recompute the filter and SSH policy from it
	lastFilter []tailcfg.FilterRule // the filter the client has
	lastSSH    *tailcfg.SSHPolicy   // the SSH policy the client has (as sshMessage sent it)
	changed    map[tailcfg.NodeID]*tailcfg.Node
	patches    map[tailcfg.NodeID]*tailcfg.PeerChange
	removed    map[tailcfg.NodeID]bool
	ping       *tailcfg.PingRequest // pending health ping; see health.go
	resync     pendingResync        // a config change to send as a delta; see resync.go
	onClose    func()               // called by close (abortOnClose); must not block

	// held is the set of peers the client holds: those of the last full
	// netmap, plus the changed and minus the removed peers of every delta
	// since. Only the session's own goroutine (Server.stream, and
	// snapshotMap within it) touches it, when it builds a message.
	held idSet
}

func newSession(id tailcfg.NodeID) *session {
	return &session{nodeID: id, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (s *session) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// close ends the session; the poll goroutine returns, and a write it is
// blocked in fails (abortOnClose, through onClose). What was queued is dropped at once and
// later enqueues are ignored, so a closed session holds no netmap data
// while its goroutine winds down.
func (s *session) close(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.closeMsg = why
		s.full, s.selfView, s.filterPol, s.lastFilter, s.lastSSH = false, nil, nil, nil, nil
		s.changed, s.patches, s.removed, s.ping = nil, nil, nil, nil
		s.resync = pendingResync{}
		close(s.done)
		if s.onClose != nil {
			s.onClose()
		}
	}
}

// setOnClose makes f (nil: nothing) what close calls; on a session closed
// already, f is called now.
func (s *session) setOnClose(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onClose = f
	if s.closed && f != nil {
		f()
	}
}

func (s *session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *session) enqueueFull() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.full = true
	s.mu.Unlock()
	s.poke()
}

func (s *session) enqueueSelf(v *tailcfg.Node) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.selfView = v
	s.mu.Unlock()
	s.poke()
}

func (s *session) enqueueChanged(v *tailcfg.Node) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.changed == nil {
		s.changed = map[tailcfg.NodeID]*tailcfg.Node{}
	}
	s.changed[v.ID] = v
	delete(s.patches, v.ID)
	delete(s.removed, v.ID)
	s.mu.Unlock()
	s.poke()
}

// enqueuePatch queues a runtime change of a peer; view is the peer's
// current full view, used instead when a full change is already pending.
func (s *session) enqueuePatch(pc *tailcfg.PeerChange, view *tailcfg.Node) {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return
	case s.changed[pc.NodeID] != nil:
		s.changed[pc.NodeID] = view
	case s.removed[pc.NodeID]:
		// The peer is gone for this client; nothing to patch.
	default:
		if s.patches == nil {
			s.patches = map[tailcfg.NodeID]*tailcfg.PeerChange{}
		}
		if prev := s.patches[pc.NodeID]; prev != nil {
			s.patches[pc.NodeID] = mergePatch(prev, pc)
		} else {
			s.patches[pc.NodeID] = pc // shared by all sessions; never modified
		}
	}
	s.mu.Unlock()
	s.poke()
}

func (s *session) enqueueRemoved(id tailcfg.NodeID) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.removed == nil {
		s.removed = map[tailcfg.NodeID]bool{}
	}
	s.removed[id] = true
	delete(s.changed, id)
	delete(s.patches, id)
	s.mu.Unlock()
	s.poke()
}

// enqueueFilterCheck asks the session to recompute its packet filter from
// pol and send it if it changed. The (possibly costly) computation runs on
// the session goroutine, not the owner's.
func (s *session) enqueueFilterCheck(pol peerPolicy) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.filterPol = pol
	s.mu.Unlock()
	s.poke()
}

// enqueuePing queues a ping for the client to answer; it replaces one
// not yet sent.
func (s *session) enqueuePing(pr *tailcfg.PingRequest) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.ping = pr
	s.mu.Unlock()
	s.poke()
}

// pendingDelta is what a session drained in one go.
type pendingDelta struct {
	full      bool
	selfView  *tailcfg.Node
	filter    []tailcfg.FilterRule
	filterSet bool
	ssh       *tailcfg.SSHPolicy // non-nil: a new SSH policy (sshMessage)
	changed   map[tailcfg.NodeID]*tailcfg.Node
	patches   map[tailcfg.NodeID]*tailcfg.PeerChange
	removed   map[tailcfg.NodeID]bool
	ping      *tailcfg.PingRequest
	resync    pendingResync // resolved by Server.resolveResync before the message is built
	// What a resync sends of the config's part of the netmap.
	derpMap  *tailcfg.DERPMap
	dns      *tailcfg.DNSConfig
	profiles []tailcfg.UserProfile
}

func (d *pendingDelta) empty() bool {
	return !d.full && d.selfView == nil && !d.filterSet && d.ssh == nil && len(d.changed) == 0 && len(d.patches) == 0 && len(d.removed) == 0 && d.ping == nil &&
		d.derpMap == nil && d.dns == nil && len(d.profiles) == 0
}

// take drains the queue. A pending filter check (of the packet filter and
// the SSH policy, whose principals are peers' addresses) is done here, on
// the session goroutine, outside the lock.
func (s *session) take() pendingDelta {
	s.mu.Lock()
	d := pendingDelta{full: s.full, selfView: s.selfView, changed: s.changed, patches: s.patches, removed: s.removed, ping: s.ping, resync: s.resync}
	pol := s.filterPol
	s.full, s.selfView, s.filterPol, s.ping = false, nil, nil, nil
	s.changed, s.patches, s.removed = nil, nil, nil
	s.resync = pendingResync{}
	s.mu.Unlock()
	if pol != nil && !d.full && !d.resync.pending { // a resync sends them anyway (resolveResync)
		f := pol.FilterOf(s.nodeID)
		ssh := sshMessage(pol.SSHOf(s.nodeID))
		s.mu.Lock()
		if !sameFilter(f, s.lastFilter) {
			d.filter, d.filterSet = f, true
			s.lastFilter = f
		}
		if !reflect.DeepEqual(ssh, s.lastSSH) {
			d.ssh, s.lastSSH = ssh, ssh
		}
		s.mu.Unlock()
	}
	return d
}

// resetForFull drops queued deltas because a full netmap with filter f
// and SSH policy ssh (sshMessage) is being built from the current state;
// called by the owner goroutine.
func (s *session) resetForFull(f []tailcfg.FilterRule, ssh *tailcfg.SSHPolicy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.full, s.selfView, s.filterPol = false, nil, nil
	s.changed, s.patches, s.removed = nil, nil, nil
	s.resync = pendingResync{}
	s.lastFilter, s.lastSSH = f, ssh
}

// setSent records f and ssh as the filter and SSH policy the client has,
// sent in a full netmap built off the owner goroutine (see snapshotMap).
func (s *session) setSent(f []tailcfg.FilterRule, ssh *tailcfg.SSHPolicy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.lastFilter, s.lastSSH = f, ssh
	}
}

// mergePatch returns a new patch folding newer into older; fields set in
// newer win. Neither argument is modified.
func mergePatch(older, newer *tailcfg.PeerChange) *tailcfg.PeerChange {
	m := *older
	if newer.DERPRegion != 0 {
		m.DERPRegion = newer.DERPRegion
	}
	if newer.Cap != 0 {
		m.Cap = newer.Cap
	}
	if newer.Endpoints != nil {
		m.Endpoints = newer.Endpoints
	}
	if newer.Key != nil {
		m.Key = newer.Key
	}
	if newer.DiscoKey != nil {
		m.DiscoKey = newer.DiscoKey
	}
	if newer.Online != nil {
		m.Online = newer.Online
	}
	if newer.LastSeen != nil {
		m.LastSeen = newer.LastSeen
	}
	if newer.KeyExpiry != nil {
		m.KeyExpiry = newer.KeyExpiry
	}
	return &m
}
