package control

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"github.com/tailplane/tailplane/policy"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// node is the owner goroutine's record of one registered node: its durable
// state (nodeRecord, saved with saveNode) plus runtime state that lives
// only in memory. Only the owner goroutine touches a node; sessions see
// the immutable view.
type node struct {
	nodeRecord

	// Runtime state, reported by the node's map requests.
	endpoints []netip.AddrPort
	homeDERP  int
	capVer    tailcfg.CapabilityVersion
	online    bool
	// offlineSince is when the node was last known to go offline, for the
	// ephemeral sweep: a session's end, its registration, or (for nodes
	// loaded at start-up, whose sessions a restart cut) the server's start.
	offlineSince time.Time
	sess         *session // current streaming map session; nil when offline

	// view is what peers get; rebuilt on every change and never modified
	// after it was handed to a session. self is what the node itself gets:
	// view, plus the capabilities only it needs (see selfView).
	view *tailcfg.Node
	self *tailcfg.Node

	upd updateLimit // map-request rate limit; see limits.go

	health routerHealth // pings of a subnet router; see health.go
}

// tagged reports whether the node is owned by tags rather than a user.
func (n *node) tagged() bool { return len(n.tags) > 0 }

// world is the mutable tailnet state owned by the Server's run goroutine.
// What of it other goroutines need, it publishes (see publish); through
// srv it reads the server's fixed settings and uses its store, relay
// admission list and propagation tracker.
type world struct {
	srv      *Server
	tailnet  *schema.Tailnet
	settings schema.Settings                         // tailnet.Settings with schema's defaults filled in
	profiles *map[tailcfg.UserID]tailcfg.UserProfile // tailnet's users; immutable, published
	derpMap  *tailcfg.DERPMap
	dns      *tailcfg.DNSConfig // derived from tailnet.DNS; shared by all netmaps

	compiled *policy.Policy // tailnet.Policy compiled; replaced with the config
	res      *policy.Result // compiled evaluated against the nodes; replaced on membership changes
	pol      peerPolicy     // res, as the netmap code uses it

	// primaries is the election outcome last handed to the writer (or, before
	// the first evaluation, loaded from the store); see notePrimaries.
	primaries policy.Primaries
	// graceFor lists the saved primaries the restart grace still covers;
	// see routesOffline.
	graceFor map[tailcfg.NodeID]bool
	// lead is another replica's election outcome while this server
	// follows it; see primarylead.go.
	lead primaryLead

	nodes map[tailcfg.NodeID]*node
	byKey map[key.NodePublic]*node
	names map[string]*node // by given name
	live  map[tailcfg.NodeID]*node
	v4    *ipAllocator
	v6    *ipAllocator

	// byMachine lists every node of each machine key, for a login to find
	// the machine's logged-out nodes without a pass over all nodes.
	byMachine map[key.MachinePublic][]*node

	// streams lists each machine's map sessions whose handler has not
	// ended, oldest first; see addStream.
	streams map[key.MachinePublic][]*session

	replicas replicaView // nodes online on other replicas; see replicas.go
}

// newWorld builds the world from the stored nodes and logs out those the
// config declares no owner for: a crash between the sync loop's apply and
// Install leaves them logged in in the store, and nothing else would
// cut them off.
func newWorld(ctx context.Context, srv *Server, c *Prepared, rows []*store.Node, saved policy.Primaries) (*world, error) {
	w := &world{
		srv:       srv,
		primaries: saved,
		nodes:     map[tailcfg.NodeID]*node{},
		byKey:     map[key.NodePublic]*node{},
		byMachine: map[key.MachinePublic][]*node{},
		names:     map[string]*node{},
		live:      map[tailcfg.NodeID]*node{},
	}
	w.setTailnet(c)
	w.startGrace()
	for _, r := range rows {
		rec, err := recordFromStore(r)
		if err != nil {
			return nil, err
		}
		w.addNode(&node{nodeRecord: rec, offlineSince: srv.now()})
	}
	w.evaluatePolicy()
	if w.pruneUndeclared(ctx) {
		w.evaluatePolicy()
	}
	for _, n := range w.nodes {
		w.refreshView(n)
	}
	return w, nil
}

// setTailnet installs a prepared config and publishes it; the caller
// pushes the consequences.
func (w *world) setTailnet(c *Prepared) {
	w.compiled = c.compiled
	w.tailnet = c.tailnet
	w.settings = c.settings
	profiles := userProfiles(c.tailnet)
	w.profiles = &profiles
	s := c.settings
	// Existing nodes keep their addresses even outside a new range.
	if w.v4 == nil || w.v4.prefix != s.IPv4.Masked() {
		w.v4 = w.reservedAllocator(s.IPv4, func(n *node) netip.Addr { return n.v4 })
	}
	if w.v6 == nil || w.v6.prefix != s.IPv6.Masked() {
		w.v6 = w.reservedAllocator(s.IPv6, func(n *node) netip.Addr { return n.v6 })
	}
	w.derpMap = w.srv.currentDERPMap(c)
	w.dns = c.dns
	w.publish()
}

// publish makes the installed config, its user profiles and the latest
// policy result visible to the other goroutines (see published). It is the
// only writer of Server.published; setTailnet and setResult call it.
func (w *world) publish() {
	p := &w.srv.published
	p.tailnet.Store(w.tailnet)
	p.profiles.Store(w.profiles)
	p.policyRes.Store(w.res)
	p.netmap.Store(&netmapBase{derpMap: w.derpMap, dns: w.dns, domain: w.settings.Domain, https: w.tailnet.DNS.HTTPS})
}

// reservedAllocator returns an allocator for p with every node's address
// (addr of it) reserved, so no address is handed out twice.
func (w *world) reservedAllocator(p netip.Prefix, addr func(*node) netip.Addr) *ipAllocator {
	a := newIPAllocator(p)
	for _, n := range w.nodes {
		a.reserve(addr(n))
	}
	return a
}

func (w *world) addNode(n *node) {
	w.nodes[n.id] = n
	w.byKey[n.nodeKey] = n
	w.byMachine[n.machine] = append(w.byMachine[n.machine], n)
	w.names[n.givenName] = n
	if w.v4 != nil {
		w.v4.reserve(n.v4)
		w.v6.reserve(n.v6)
	}
}

// dropMachine takes n out of byMachine.
func (w *world) dropMachine(n *node) {
	ns := slices.DeleteFunc(slices.Clone(w.byMachine[n.machine]), func(x *node) bool { return x == n })
	if len(ns) == 0 {
		delete(w.byMachine, n.machine)
	} else {
		w.byMachine[n.machine] = ns
	}
}

// leaving is how a node stops being served; see leave.
type leaving int

const (
	disconnecting leaving = iota // its map session ended; it stays registered and logged in
	loggingOut                   // kept with its addresses, hidden from peers until it logs in again; an ephemeral node is removed instead
	removing                     // deleted, its addresses freed
)

// leave is the one sequence by which a node stops being served, however it
// does (how): its map session, if it has one, ends with why and it goes
// offline; it is then disconnected (its last-seen time set), logged out or
// removed, and that is saved; and its peers are told, of its going offline
// or of its leaving, unless the caller re-evaluates the whole tailnet
// itself (quiet). A removal the store refuses changes nothing. Any other
// change holds in memory even when saving it fails, and the error is
// returned: a node marked logged out must not keep its session.
func (w *world) leave(ctx context.Context, n *node, how leaving, why string, quiet bool) error {
	if how == loggingOut && n.ephemeral {
		how = removing
	}
	if how == removing {
		if err := w.srv.store.DeleteNode(ctx, int64(n.id)); err != nil {
			return err
		}
	}
	if n.sess != nil {
		n.sess.close(why)
		n.sess = nil
	}
	w.dropPing(n)
	delete(w.live, n.id)
	n.online = false
	var err error
	switch how {
	case disconnecting:
		n.lastSeen = w.srv.now().UTC().Truncate(time.Second)
		n.offlineSince = w.srv.now()
		err = w.saveNodeSeen(ctx, n)
	case loggingOut:
		n.loggedOut = true
		n.lastSeen = w.srv.now().UTC()
		err = w.saveNode(ctx, n)
	case removing:
		delete(w.nodes, n.id)
		delete(w.byKey, n.nodeKey)
		w.dropMachine(n)
		delete(w.names, n.givenName)
		w.v4.release(n.v4)
		w.v6.release(n.v6)
		w.srv.relay.drop(n.id)
		w.srv.views.forget(n.id)
	}
	if quiet {
		return err
	}
	if how == disconnecting {
		off, seen := false, n.lastSeen
		w.onlineChanged(n, &tailcfg.PeerChange{NodeID: n.id, Online: &off, LastSeen: &seen})
	} else {
		w.membershipChanged(n, how == removing)
	}
	return err
}

// visible reports whether n is currently part of the tailnet for peers:
// logged in, and approved when device approval held it.
func (w *world) visible(n *node) bool { return !n.loggedOut && !n.pending }

// refreshView rebuilds the node's published view and reports whether it
// changed; a view that comes out equal to the one before is kept, with
// its cached encoding. Every change of a node's key, login or expiry
// rebuilds it, so this is also where the relay's admission list follows
// the node.
func (w *world) refreshView(n *node) (changed bool) {
	if v := w.nodeView(n); n.view == nil || !v.Equal(n.view) {
		n.view, changed = v, true
	}
	n.self = w.selfView(n)
	w.srv.views.set(n.view)
	w.srv.relay.set(n.id, n.nodeKey, w.relayAdmitted(n), n.keyExpiry)
	return changed
}

// publishChanged sends n's new view to n itself and to every live node
// that sees it. Cost: one view build plus one enqueue per live peer.
func (w *world) publishChanged(n *node) {
	w.refreshView(n)
	if n.sess != nil {
		n.sess.enqueueSelf(n.self)
	}
	if !w.visible(n) {
		return
	}
	w.pol.EachPeer(n, func(id tailcfg.NodeID) {
		if p := w.live[id]; p != nil && p != n {
			p.sess.enqueueChanged(n.view)
		}
	})
}

// publishPatch sends a small runtime change of n to the live nodes that
// see it; one shared PeerChange, one enqueue per live peer.
func (w *world) publishPatch(n *node, pc *tailcfg.PeerChange) {
	w.refreshView(n)
	if !w.visible(n) {
		return
	}
	w.pol.EachPeer(n, func(id tailcfg.NodeID) {
		if p := w.live[id]; p != nil && p != n {
			p.sess.enqueuePatch(pc, n.view)
		}
	})
}

// membershipChanged updates the policy evaluation after n joined, left or
// changed identity (tags, owner, key, advertised routes). Only the nodes
// the policy engine reports as affected are visited: each live one gets n
// (or n's removal) and a packet filter check, done lazily on its session
// goroutine; routers whose routes moved are republished.
func (w *world) membershipChanged(n *node, removed bool) {
	affected := w.updatePolicy(n, removed)
	if !removed {
		w.refreshView(n)
	}
	for _, id := range affected {
		x := w.nodes[id]
		if x == nil {
			continue // n itself, removed
		}
		if x != n && len(x.hostinfo.RoutableIPs) > 0 {
			w.refreshIfRoutesMoved(x) // only routers' routes can move
		}
		p := w.live[id]
		if p == nil {
			continue
		}
		if p == n {
			p.sess.enqueueFull()
			continue
		}
		if !removed && w.visible(n) && w.pol.CanSee(p, n) {
			p.sess.enqueueChanged(n.view)
		} else {
			p.sess.enqueueRemoved(n.id)
		}
		p.sess.enqueueFilterCheck(w.pol)
	}
}

// refreshIfRoutesMoved republishes router x when the policy now routes it
// differently (subnet primaries, exit routes) or gives it other node
// attributes.
func (w *world) refreshIfRoutesMoved(x *node) {
	old := x.view
	allowed, primary := w.pol.Routes(x)
	if old != nil && slices.Equal(old.AllowedIPs, allowed) && slices.Equal(old.PrimaryRoutes, primary) &&
		reflect.DeepEqual(old.CapMap, w.pol.CapMap(x)) {
		return
	}
	w.publishChanged(x)
}

// everythingChanged re-evaluates the policy from scratch and sends every
// live node a full netmap; used when the config changed.
func (w *world) everythingChanged() {
	w.evaluatePolicy()
	for _, n := range w.nodes {
		w.refreshView(n)
	}
	for _, p := range w.live {
		p.sess.enqueueFull()
	}
}

// reapEphemeral removes ephemeral nodes that were offline longer than the
// tailnet's ephemeral timeout.
func (w *world) reapEphemeral(ctx context.Context, now time.Time) {
	timeout := w.settings.EphemeralTimeout
	for _, n := range w.nodes {
		if !n.ephemeral || n.online {
			continue
		}
		since := n.offlineSince
		if now.Sub(since) >= timeout {
			w.srv.logf("control: removing ephemeral node %q (%d): inactive since %s", n.givenName, n.id, since.Format(time.RFC3339))
			if err := w.leave(ctx, n, removing, "node was removed", false); err != nil {
				w.srv.logf("control: %v", err)
			}
		}
	}
}

// expireKeys cuts off the nodes whose key expired since their view was
// built (see cutOffExpired).
func (w *world) expireKeys(now time.Time) {
	for _, n := range w.nodes {
		if n.view != nil && !n.view.Expired && w.keyExpired(n, now) {
			w.cutOffExpired(n)
		}
	}
}
