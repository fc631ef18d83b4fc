package control

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"github.com/tailplane/tailplane/policy"
	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
)

// peerPolicy is everything netmaps need from the tailnet's policy: who sees
// whom, each node's packet filter, SSH policy and capabilities, and the
// routes peers send its way. It is immutable once built.
type peerPolicy interface {
	// CanSee reports whether viewer gets peer in its netmap.
	CanSee(viewer, peer *node) bool
	// PeerCount returns how many nodes n sees.
	PeerCount(n *node) int
	// EachPeer calls f with the ID of every node that sees n (visibility
	// is symmetric).
	EachPeer(n *node, f func(tailcfg.NodeID))
	// FilterOf is Filter by node ID, for session goroutines that hold no
	// *node; nil for an unknown node.
	FilterOf(id tailcfg.NodeID) []tailcfg.FilterRule
	// Filter returns n's packet filter; callers must not modify it. Empty
	// means deny all.
	Filter(n *node) []tailcfg.FilterRule
	// SSHPolicy returns the SSH rules n enforces; nil means none.
	SSHPolicy(n *node) *tailcfg.SSHPolicy
	// SSHOf is SSHPolicy by node ID, for session goroutines.
	SSHOf(id tailcfg.NodeID) *tailcfg.SSHPolicy
	// CapMap returns the node attributes n gets; nil means none.
	CapMap(n *node) tailcfg.NodeCapMap
	// Routes returns what peers route to n (its addresses, the subnets it
	// is primary router for and its exit routes) and its primary subnets.
	Routes(n *node) (allowed, primary []netip.Prefix)
}

// compilePolicy validates and compiles the tailnet's policy.
func compilePolicy(t *schema.Tailnet) (*policy.Policy, error) {
	p, diags := policy.Compile(t)
	if diags.HasErrors() {
		// Wrapped, so callers (the sync loop's check step) keep positions.
		return nil, fmt.Errorf("control: the tailnet policy has errors (run `tailplane lint`):\n%w", diags.Errors())
	}
	return p, nil
}

// inventory lists the nodes the served policy is evaluated against.
func (w *world) inventory() []policy.Node { return w.inventoryUnder(w.tailnet, w.compiled) }

// inventoryUnder lists the nodes as the policy is evaluated against them
// under config t, compiled to p: their approved routes are the ones t and
// p approve. It is the one description of the nodes to the policy engine:
// the served policy is evaluated against it, and policy tests run against
// it (Server.Test). Logged-out nodes are not part of it, so nobody sees
// them, and neither are nodes that installing t would log out (their
// owner is undeclared in t; see pruneUndeclared); tagged nodes carry only
// the tags t declares, as installing t leaves them.
//
// High availability: a router without a live map session, or one failing
// its health checks, is marked Offline (see routesOffline), and the
// engine's sticky election (see policy.PrimaryKey) moves its subnets to an
// online router; nothing is taken from it here.
func (w *world) inventoryUnder(t *schema.Tailnet, p *policy.Policy) []policy.Node {
	nodes := make([]policy.Node, 0, len(w.nodes))
	for _, n := range w.nodes {
		if w.inInventory(n, t, p) {
			nodes = append(nodes, w.policyNode(n, t, p))
		}
	}
	return nodes
}

// inInventory reports whether n is one of inventoryUnder(t, p)'s nodes.
func (w *world) inInventory(n *node, t *schema.Tailnet, p *policy.Policy) bool {
	return w.visible(n) && undeclaredOwner(n, t, p) == ""
}

// evaluatePolicy resolves the compiled policy against the current nodes
// from scratch.
func (w *world) evaluatePolicy() {
	opts := policy.Options{ControlURL: w.srv.serverURL}
	if w.res != nil {
		opts.Primaries = w.res.Primaries() // a config change keeps the elected routers
	} else {
		opts.Primaries = w.primaries // the first evaluation continues from the saved election
	}
	w.setResult(w.compiled.Evaluate(w.inventory(), opts))
}

// setResult installs a new policy result and publishes it to the sessions.
func (w *world) setResult(res *policy.Result) {
	w.res = res
	w.pol = &evaluated{res: res}
	w.notePrimaries(res)
	w.publish()
}

// updatePolicy re-evaluates after node n changed (joined, left, or
// changed what the policy sees of it), keeping the views the change cannot
// affect, and returns the IDs of the nodes whose views may differ. Only
// n is described to the engine (policy.Result.UpdateNodes): what the
// inventory holds of every other node is as the last update left it, which
// holds because every change of what inventoryUnder says of a node ends in
// membershipChanged for that node (or a full evaluatePolicy). A node's
// Offline changes only for subnet routers (see policyNode), which call it
// when they come and go.
func (w *world) updatePolicy(n *node, removed bool) []tailcfg.NodeID {
	if removed || !w.inInventory(n, w.tailnet, w.compiled) {
		return w.updateNodes(nil, []tailcfg.NodeID{n.id})
	}
	return w.updateNodes([]policy.Node{w.policyNode(n, w.tailnet, w.compiled)}, nil)
}

// updateNodes installs the engine's result with the nodes changed and
// removed, and returns the nodes whose views that affects.
func (w *world) updateNodes(changed []policy.Node, removed []tailcfg.NodeID) []tailcfg.NodeID {
	res, affected := w.res.UpdateNodes(changed, removed)
	w.setResult(res)
	if verifyInventory != nil {
		verifyInventory(w)
	}
	return affected
}

// verifyInventory, when set (by the package's tests), is called after
// every incremental policy update to check that the engine's inventory
// is the one inventory() describes.
var verifyInventory func(*world)

// policyNode describes n to the policy engine under config t, compiled
// to p: with the tags of n that p declares.
func (w *world) policyNode(n *node, t *schema.Tailnet, p *policy.Policy) policy.Node {
	pn := policy.Node{
		ID:          n.id,
		Name:        n.givenName,
		User:        n.userLogin,
		Tags:        declaredTags(n, p),
		IPv4:        n.v4,
		IPv6:        n.v6,
		RoutableIPs: n.hostinfo.RoutableIPs,
		Created:     n.createdAt,
		// Only subnet routers take part in elections, so only they are
		// ever offline here: a client coming and going changes nothing
		// the engine sees (and needs no policy update).
		Offline: routesSubnets(n) && w.routesOffline(n),
		// Replicas: the elections the deciding replica gave n.
		DecidedPrimary: w.decidedFor(n.id),
	}
	pn.ApprovedRoutes = w.approvedRoutes(n, pn, t, p)
	return pn
}

// approvedRoutes returns the routes n advertises that config t (compiled
// to pol) approves: under `routes` by its owner (one of its tags, or its
// user if untagged), alone or with its MagicDNS name
// ("tag:router/office-router"), or by the policy's autoApprovers. The name alone never approves: the client chose
// it, and a bare name key (the old form, perhaps still in the applied
// state of an older tailplane) is never looked up.
func (w *world) approvedRoutes(n *node, pn policy.Node, t *schema.Tailnet, pol *policy.Policy) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range routeApprovals(n, pn, t, pol) {
		out = append(out, a.Route)
	}
	return out
}

// RouteApproval is one advertised route a node may serve, and the rule that
// approves it.
type RouteApproval struct {
	Route netip.Prefix `json:"route"`
	// Rule is the field path of the approving entry: `routes["tag:router"]`
	// (or with "/name"), or one of autoApprovers (see
	// policy.Policy.RouteApprover).
	Rule string `json:"rule"`
}

// routeApprovals is approvedRoutes with the approving rule of each route:
// the first of n's `routes` keys that lists it, else autoApprovers.
func routeApprovals(n *node, pn policy.Node, t *schema.Tailnet, pol *policy.Policy) []RouteApproval {
	adv := n.hostinfo.RoutableIPs
	if len(adv) == 0 {
		return nil
	}
	keys := schema.RouteKeysFor(n.givenName, n.userLogin, pn.Tags)
	var out []RouteApproval
	for _, p := range adv {
		rule := ""
		if i := slices.IndexFunc(keys, func(k string) bool { return slices.Contains(t.Routes[k], p.Masked()) }); i >= 0 {
			rule = schema.PathKey("routes", keys[i])
		} else {
			rule = pol.RouteApprover(pn, p)
		}
		if rule != "" {
			out = append(out, RouteApproval{Route: p, Rule: rule})
		}
	}
	return out
}

// evaluated is a peerPolicy backed by the policy engine's Result.
type evaluated struct{ res *policy.Result }

func (e *evaluated) view(n *node) *policy.NodeView { return e.res.Node(n.id) }

// CanSee looks viewer up in peer's view: visibility is symmetric, and
// peer's view is the one a change to peer has computed anyway.
func (e *evaluated) CanSee(viewer, peer *node) bool {
	v := e.view(peer)
	if v == nil {
		return false
	}
	return v.Peers.Has(viewer.id)
}

func (e *evaluated) EachPeer(n *node, f func(tailcfg.NodeID)) {
	if v := e.view(n); v != nil {
		v.Peers.Each(f)
	}
}

func (e *evaluated) FilterOf(id tailcfg.NodeID) []tailcfg.FilterRule {
	return e.res.PacketFilter(id)
}

func (e *evaluated) SSHOf(id tailcfg.NodeID) *tailcfg.SSHPolicy {
	return e.res.SSHPolicy(id)
}

func (e *evaluated) PeerCount(n *node) int {
	if v := e.view(n); v != nil {
		return v.Peers.Len()
	}
	return 0
}

func (e *evaluated) Filter(n *node) []tailcfg.FilterRule {
	if v := e.view(n); v != nil {
		return v.PacketFilter
	}
	return nil
}

func (e *evaluated) SSHPolicy(n *node) *tailcfg.SSHPolicy {
	if v := e.view(n); v != nil {
		return v.SSH
	}
	return nil
}

func (e *evaluated) CapMap(n *node) tailcfg.NodeCapMap {
	return e.res.CapMap(n.id) // without building n's peer list
}

func (e *evaluated) Routes(n *node) (allowed, primary []netip.Prefix) {
	all, primary := e.res.SelfRoutes(n.id) // without building n's peer list
	if all == nil {
		return n.addresses(), nil
	}
	addrs := n.addresses()
	for _, p := range all {
		if p.Bits() == 0 || slices.Contains(primary, p) || slices.Contains(addrs, p) {
			allowed = append(allowed, p)
		}
	}
	return allowed, primary
}

// sameFilter reports whether two filters are equal, cheaply when they share
// storage.
func sameFilter(a, b []tailcfg.FilterRule) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	return reflect.DeepEqual(a, b)
}
