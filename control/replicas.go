package control

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// Replicas. Several Servers on one PostgreSQL database serve one tailnet
// (package replica connects them). Each node has its map session with one
// of them; the others know it from the store (its durable record) and
// from the runtime state its replica publishes (Config.Fanout), and they
// enter both into their world as events on the owner goroutine, like a
// node's own requests:
//
//	LocalRuntime(ctx), LocalNodeCount(ctx)  the nodes streaming here: their runtime, their number
//	RemoteRuntime(ctx, replica, states)  another replica's nodes' runtime: online, endpoints, disco key, home DERP
//	ReloadNodes(ctx, ids)                durable records another replica wrote (or deleted); nil: all
//	ReplicaGone(ctx, replica)            a replica's lease lapsed: its nodes are offline
//
// A node streaming here is this replica's to describe: what others say
// of it is ignored. Of a node streaming elsewhere, only the replica it
// streams to can take it offline, so a late "offline" from a replica it
// left does not undo its "online" on the new one.

// RuntimeState is what of a node lives only in memory, as one replica
// tells the others.
type RuntimeState struct {
	ID        tailcfg.NodeID            `json:"i"`
	Online    bool                      `json:"o,omitempty"`
	Disco     key.DiscoPublic           `json:"d,omitzero"`
	Endpoints []netip.AddrPort          `json:"e,omitempty"`
	HomeDERP  int                       `json:"h,omitempty"`
	Cap       tailcfg.CapabilityVersion `json:"c,omitempty"`
	// Unhealthy is a subnet router failing the health checks of the
	// replica it streams to (see health.go); the deciding replica fails
	// it over (see primarylead.go).
	Unhealthy bool `json:"u,omitempty"`
}

// replicaView is the world's knowledge of the other replicas: which one
// each node online elsewhere streams to.
type replicaView struct {
	host map[tailcfg.NodeID]string // node online on another replica → that replica
}

func (n *node) runtime() RuntimeState {
	return RuntimeState{ID: n.id, Online: n.online, Disco: n.disco, Endpoints: n.endpoints, HomeDERP: n.homeDERP, Cap: n.capVer,
		Unhealthy: n.health.unhealthy}
}

// fanout hands n's runtime state to Config.Fanout, unless n is another
// replica's to describe.
func (w *world) fanout(n *node) {
	if w.srv.fanout == nil {
		return
	}
	if _, elsewhere := w.replicas.host[n.id]; elsewhere && n.sess == nil {
		return
	}
	w.srv.fanout(n.runtime())
}

// claimLocal makes n, which starts streaming here, this replica's to
// describe: a node that was online on another replica comes online here
// anew, so that every replica hears it from this one.
func (w *world) claimLocal(n *node) {
	if _, elsewhere := w.replicas.host[n.id]; elsewhere {
		delete(w.replicas.host, n.id)
		n.online = false
	}
}

// LocalNodeCount is how many nodes hold a live map session with this
// server (NodeCounts counts those of the other replicas too).
func (s *Server) LocalNodeCount(ctx context.Context) (int, error) {
	var n int
	err := s.do(ctx, func(w *world) error { n = len(w.live); return nil })
	return n, err
}

// LocalRuntime returns the runtime state of every node streaming to this
// server.
func (s *Server) LocalRuntime(ctx context.Context) ([]RuntimeState, error) {
	var out []RuntimeState
	err := s.do(ctx, func(w *world) error {
		for _, n := range w.live {
			out = append(out, n.runtime())
		}
		return nil
	})
	return out, err
}

// RemoteRuntime enters the runtime states replica published into the
// world; peers here see them as they would a local node's changes.
func (s *Server) RemoteRuntime(ctx context.Context, replica string, states []RuntimeState) error {
	return s.do(ctx, func(w *world) error {
		for _, st := range states {
			if n := w.nodes[st.ID]; n != nil && n.sess == nil {
				w.remoteRuntime(n, replica, st)
			}
		}
		return nil
	})
}

func (w *world) remoteRuntime(n *node, replica string, st RuntimeState) {
	if w.replicas.host == nil {
		w.replicas.host = map[tailcfg.NodeID]string{}
	}
	host, elsewhere := w.replicas.host[n.id]
	if !st.Online && elsewhere && host != replica {
		return // it left replica for another since
	}
	pc := &tailcfg.PeerChange{NodeID: n.id}
	patched, full := false, false
	if st.Disco != n.disco {
		n.disco = st.Disco
		d := st.Disco
		pc.DiscoKey, patched = &d, true
	}
	if !slices.Equal(st.Endpoints, n.endpoints) {
		n.endpoints = slices.Clone(st.Endpoints)
		pc.Endpoints, patched = n.endpoints, true
		full = full || len(n.endpoints) == 0 // an empty patch reads as "unchanged"
	}
	if st.HomeDERP != n.homeDERP {
		n.homeDERP = st.HomeDERP
		pc.DERPRegion, patched = st.HomeDERP, true
		full = full || st.HomeDERP == 0
	}
	if st.Cap != n.capVer {
		n.capVer, pc.Cap, patched = st.Cap, st.Cap, true
	}
	onlineChanged := st.Online != n.online
	healthChanged := st.Unhealthy != n.health.unhealthy
	n.health.unhealthy = st.Unhealthy
	if st.Online {
		w.replicas.host[n.id] = replica
	} else {
		delete(w.replicas.host, n.id)
	}
	if onlineChanged {
		w.setRemoteOnline(n, st.Online, pc)
		return
	}
	if healthChanged && routesSubnets(n) {
		w.membershipChanged(n, false) // only elections read it
		return
	}
	switch {
	case full:
		w.publishChanged(n)
	case patched:
		w.publishPatch(n, pc)
	}
}

// setRemoteOnline marks a node of another replica online or offline and
// tells its peers here, with the rest of pc.
func (w *world) setRemoteOnline(n *node, online bool, pc *tailcfg.PeerChange) {
	n.online = online
	pc.Online = &online
	if online {
		delete(w.graceFor, n.id) // judged by what its replica says from now on
	}
	if !online {
		n.offlineSince = w.srv.now()
		seen := w.srv.now().UTC().Truncate(time.Second)
		n.lastSeen, pc.LastSeen = seen, &seen
	}
	if routesSubnets(n) {
		w.membershipChanged(n, false)
		return
	}
	w.publishPatch(n, pc)
}

// ReplicaGone marks offline every node that was online on replica, whose
// lease lapsed: it cannot say so itself.
func (s *Server) ReplicaGone(ctx context.Context, replica string) error {
	return s.do(ctx, func(w *world) error {
		gone := 0
		for id, host := range w.replicas.host {
			n := w.nodes[id]
			if host != replica {
				continue
			}
			delete(w.replicas.host, id)
			if n != nil && n.sess == nil && n.online {
				w.setRemoteOnline(n, false, &tailcfg.PeerChange{NodeID: n.id})
				gone++
			}
		}
		if gone > 0 {
			w.srv.logf("control: replica %s is gone (its lease lapsed): %d of its nodes are offline", replica, gone)
		}
		return nil
	})
}

// ReloadNodes reads the nodes with the given IDs from the store (all of
// them for nil) and enters what another replica changed: new nodes join,
// deleted ones leave, changed ones are republished.
//
// The nodes are read on the owner goroutine, which is also the one that
// writes this server's own changes of nodes: a row read before a local
// registration committed must not make the new node look deleted, nor an
// older row undo a local change.
func (s *Server) ReloadNodes(ctx context.Context, ids []tailcfg.NodeID) error {
	return s.do(ctx, func(w *world) error {
		byID, err := s.readNodes(ctx, ids)
		if err != nil {
			return err
		}
		want := ids
		if want == nil {
			for id := range byID {
				want = append(want, id)
			}
			for id := range w.nodes {
				if byID[id] == nil {
					want = append(want, id)
				}
			}
		}
		for _, id := range want {
			if err := w.reloadNode(ctx, id, byID[id]); err != nil {
				w.srv.logf("control: node %d changed on another replica: %v", id, err)
			}
		}
		return nil
	})
}

// readNodes reads the nodes with the given IDs (all for nil) from the
// store; a missing one is not in the map.
func (s *Server) readNodes(ctx context.Context, ids []tailcfg.NodeID) (map[tailcfg.NodeID]*store.Node, error) {
	byID := map[tailcfg.NodeID]*store.Node{}
	if ids != nil {
		for _, id := range ids {
			r, err := s.store.NodeByID(ctx, int64(id))
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return nil, err
			default:
				byID[id] = r
			}
		}
		return byID, nil
	}
	rows, err := s.store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		byID[tailcfg.NodeID(r.ID)] = r
	}
	return byID, nil
}

// reloadNode enters row, node id as another replica stored it (nil:
// deleted), into the world.
func (w *world) reloadNode(ctx context.Context, id tailcfg.NodeID, row *store.Node) error {
	n := w.nodes[id]
	if row == nil {
		if n == nil {
			return nil
		}
		return w.leave(ctx, n, removing, "node was removed", false)
	}
	rec, err := recordFromStore(row)
	if err != nil {
		return err
	}
	if n == nil {
		n = &node{nodeRecord: rec, offlineSince: w.srv.now()}
		w.addNode(n)
		w.membershipChanged(n, false)
		return nil
	}
	old := n.nodeRecord
	if reflect.DeepEqual(old, rec) {
		return nil
	}
	if old.nodeKey != rec.nodeKey {
		delete(w.byKey, old.nodeKey)
		w.byKey[rec.nodeKey] = n
	}
	if old.givenName != rec.givenName {
		if w.names[old.givenName] == n {
			delete(w.names, old.givenName)
		}
		w.names[rec.givenName] = n
	}
	if old.v4 != rec.v4 || old.v6 != rec.v6 {
		w.v4.release(old.v4)
		w.v6.release(old.v6)
		w.v4.reserve(rec.v4)
		w.v6.reserve(rec.v6)
	}
	if n.sess == nil {
		rec.disco = n.disco // the runtime's is at least as new
	}
	if old.machine != rec.machine {
		w.dropMachine(n)
		w.byMachine[rec.machine] = append(w.byMachine[rec.machine], n)
	}
	n.nodeRecord = rec
	if n.sess != nil && (rec.loggedOut || rec.nodeKey != old.nodeKey) {
		n.sess.close("node changed on another replica")
		n.sess = nil
		delete(w.live, n.id)
		n.online = false
	}
	if w.keyExpired(n, w.srv.now()) && !w.keyExpired(&node{nodeRecord: old}, w.srv.now()) {
		w.cutOffExpired(n)
		return nil
	}
	w.membershipChanged(n, false)
	if n.sess != nil && old.pending != rec.pending {
		n.sess.enqueueFull() // approved on another replica: MachineAuthorized, as ApproveNode sends it
	}
	return nil
}

// registerAttempts bounds registerAgain: under a registration storm on
// several replicas each attempt may lose again, to another replica.
const registerAttempts = 8

// registerAgain registers the new node rec once more after the store
// refused it for an address or name another node has: another replica
// registered that node a moment ago, and its notification has not arrived.
// Each attempt reads every node from the store and gives rec a free name
// and addresses; after the first, the address search starts at a random
// point of the range, so that replicas racing for the same next address
// part ways. On error rec holds no addresses (the caller releases them).
func (w *world) registerAgain(ctx context.Context, rec *nodeRecord, k schema.AuthKey) (*store.Node, error) {
	var err error
	for attempt := range registerAttempts {
		w.v4.release(rec.v4)
		w.v6.release(rec.v6)
		rec.v4, rec.v6 = netip.Addr{}, netip.Addr{}
		rows, rerr := w.srv.store.Nodes(ctx)
		if rerr != nil {
			return nil, rerr
		}
		for _, r := range rows {
			if err := w.reloadNode(ctx, tailcfg.NodeID(r.ID), r); err != nil {
				w.srv.logf("control: node %d: %v", r.ID, err)
			}
		}
		if attempt > 0 {
			w.v4.next, w.v6.next = randomAddrIn(w.v4.prefix), randomAddrIn(w.v6.prefix)
		}
		rec.givenName = w.uniqueName(rec.hostinfo.Hostname, nil)
		v4, aerr := w.v4.allocate()
		if aerr != nil {
			return nil, aerr
		}
		v6, aerr := w.v6.allocate()
		if aerr != nil {
			w.v4.release(v4)
			return nil, aerr
		}
		rec.v4, rec.v6 = v4, v6
		stored := rec.toStore()
		err = w.srv.store.RegisterNode(ctx, stored, k.SecretHash, keyUseLimit(k))
		if !errors.Is(err, store.ErrConflict) {
			return stored, err
		}
	}
	return nil, err
}

// randomAddrIn returns a random address of p (p masked), for a search
// cursor: at most the last 32 bits vary.
func randomAddrIn(p netip.Prefix) netip.Addr {
	p = p.Masked()
	hostBits := p.Addr().BitLen() - p.Bits()
	if hostBits <= 1 {
		return p.Addr().Next()
	}
	var r [4]byte
	rand.Read(r[:])
	off := binary.BigEndian.Uint32(r[:])
	if hostBits < 32 {
		off &= 1<<hostBits - 1
	}
	b := p.Addr().As16()
	low := binary.BigEndian.Uint32(b[12:]) + off
	binary.BigEndian.PutUint32(b[12:], low)
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	if !p.Contains(a) {
		return p.Addr().Next()
	}
	return a
}

// registeredElsewhere returns the live node with node key nk of machine
// mkey when the store holds one this replica did not know of yet. A new
// registration the store refused (the auth key's last use taken, or the
// node key taken) may be the client's retry of one that another replica
// committed and then died before answering: the client gets that node,
// as the refresh of a registration it is. Nil when there is none.
func (w *world) registeredElsewhere(ctx context.Context, nk key.NodePublic, mkey key.MachinePublic) *node {
	rows, err := w.srv.store.Nodes(ctx)
	if err != nil {
		return nil
	}
	for _, r := range rows {
		if r.NodeKey != nk.String() {
			continue
		}
		if err := w.reloadNode(ctx, tailcfg.NodeID(r.ID), r); err != nil {
			w.srv.logf("control: node %d: %v", r.ID, err)
			return nil
		}
	}
	n := w.byKey[nk]
	if n == nil || n.machine != mkey || n.loggedOut {
		return nil
	}
	w.srv.logf("control: node %q (%d) was registered by another replica a moment ago; its client asked again here", n.givenName, n.id)
	return n
}
