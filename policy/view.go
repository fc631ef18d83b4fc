package policy

import (
	"encoding/json"
	"net/netip"
	"slices"

	"go4.org/netipx"
	"tailscale.com/tailcfg"
)

// NodeView is everything the coordination server sends one node.
type NodeView struct {
	PacketFilter []tailcfg.FilterRule
	// Peers is the set of nodes the node sees (PeerCount, EachPeer,
	// HasPeer); Result.Peers lists them with the routes each carries.
	Peers  PeerSet
	SSH    *tailcfg.SSHPolicy // nil when no SSH rule targets the node
	CapMap tailcfg.NodeCapMap // the tailnet settings' caps (ssh, file-sharing) and nodeAttrs; nil when empty

	// AllowedIPs and PrimaryRoutes are the node's own: its addresses plus
	// all its approved routes, and the subnets it is primary for.
	AllowedIPs    []netip.Prefix
	PrimaryRoutes []netip.Prefix

	// partial marks a view without Peers, cached by PacketFilter and
	// SSHPolicy; Node completes it.
	partial bool
}

// PeerSet is the set of peers of one view: a bitset over the node IDs of
// the Result that computed it. The ID table is shared by every view of
// that Result, so a view's peers cost one bit per node of the tailnet, not
// an entry per peer. The zero value is empty.
type PeerSet struct {
	ids  []tailcfg.NodeID // sorted; shared, never modified
	bits bitset           // over ids
	n    int              // members
}

// Len returns the number of peers.
func (ps PeerSet) Len() int { return ps.n }

// Each calls f with the ID of every peer, in increasing order.
func (ps PeerSet) Each(f func(tailcfg.NodeID)) {
	ps.bits.each(func(i int) { f(ps.ids[i]) })
}

// Has reports whether id is a peer.
func (ps PeerSet) Has(id tailcfg.NodeID) bool {
	i, ok := slices.BinarySearch(ps.ids, id)
	return ok && ps.bits.has(i)
}

// MarshalJSON encodes the set as its sorted IDs.
func (ps PeerSet) MarshalJSON() ([]byte, error) { return json.Marshal(ps.IDs()) }

// IDs returns the peers' IDs, sorted.
func (ps PeerSet) IDs() []tailcfg.NodeID {
	out := make([]tailcfg.NodeID, 0, ps.n)
	ps.Each(func(id tailcfg.NodeID) { out = append(out, id) })
	return out
}

// Peer is one node visible to another, with the routes to send its way.
// Views share slices between nodes: treat every slice as read-only.
type Peer struct {
	ID            tailcfg.NodeID
	AllowedIPs    []netip.Prefix // addresses, primary subnets, exit routes
	PrimaryRoutes []netip.Prefix // the subnets it is primary router for
}

// Nodes returns the IDs of the evaluated nodes, sorted.
func (r *Result) Nodes() []tailcfg.NodeID {
	out := make([]tailcfg.NodeID, 0, len(r.ids)-r.holes)
	for i, id := range r.ids {
		if r.nodes[i] != nil {
			out = append(out, id)
		}
	}
	return out
}

// Inventory returns the nodes r was evaluated against, ordered by ID, as
// given to Evaluate and Update (slices shared: read-only).
func (r *Result) Inventory() []Node {
	out := make([]Node, 0, len(r.nodes)-r.holes)
	for _, s := range r.nodes {
		if s != nil {
			out = append(out, s.Node)
		}
	}
	return out
}

// Node returns what node id should receive, or nil if id is unknown.
func (r *Result) Node(id tailcfg.NodeID) *NodeView {
	s := r.state(id)
	if s == nil {
		return nil
	}
	parts := r.cachedView(s)
	if parts != nil && !parts.partial {
		return parts
	}
	v := r.computeView(s, parts)
	r.mu.Lock()
	if c := r.views[s.idx]; c != nil && !c.partial {
		v = c // computed meanwhile: hand out one view
	} else {
		r.views[s.idx] = v
	}
	r.mu.Unlock()
	return v
}

// parts returns s's view without its peers (a partial view) or its whole
// view, cached; it computes and caches the partial view if neither is.
func (r *Result) parts(s *nodeState) *NodeView {
	if v := r.cachedView(s); v != nil {
		return v
	}
	p := r.computeParts(s)
	r.mu.Lock()
	if c := r.views[s.idx]; c != nil {
		p = c
	} else {
		r.views[s.idx] = p
	}
	r.mu.Unlock()
	return p
}

// cachedView returns the view of s computed so far, or nil.
func (r *Result) cachedView(s *nodeState) *NodeView {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.views[s.idx]
}

// computeView computes s's view, taking everything but the peers from
// parts when it is not nil.
func (r *Result) computeView(s *nodeState, parts *NodeView) *NodeView {
	if parts == nil {
		parts = r.computeParts(s)
	}
	v := *parts
	vis, _, _ := r.visibility(s)
	vis.clear(s.idx)
	v.Peers = PeerSet{ids: r.ids, bits: vis, n: vis.count()}
	v.partial = false
	return &v
}

// computeParts computes s's view without its peers.
func (r *Result) computeParts(s *nodeState) *NodeView {
	return &NodeView{
		PacketFilter:  r.filterOf(s),
		SSH:           r.sshOf(s),
		CapMap:        r.capsOf(s),
		AllowedIPs:    s.allowedIPs(),
		PrimaryRoutes: slices.Clone(r.primaries[s.ID]),
		partial:       true,
	}
}

// sameUser returns the user-owned nodes of s's user (empty for tagged nodes).
func (r *Result) sameUser(s *nodeState) bitset {
	if s.Tagged() {
		return newBitset(len(r.nodes))
	}
	return r.byUser[s.User]
}

// Peers returns the peers of node id with the routes each carries for it,
// sorted by ID; nil if id is unknown. Unlike Node(id).Peers, it is built
// on every call: a server needs only the set, tests and comparisons the
// routes too.
func (r *Result) Peers(id tailcfg.NodeID) []Peer {
	s := r.state(id)
	if s == nil {
		return nil
	}
	return r.peers(s)
}

// visibility computes which nodes s can see, those it may send to or
// receive from under any rule (s itself possibly among them), and which
// routes of theirs it may use without and with via.
func (r *Result) visibility(s *nodeState) (bitset, routeAccess, []*evalRule) {
	vis := newBitset(len(r.nodes))
	var routes routeAccess
	var rb netipx.IPSetBuilder
	var vias []*evalRule
	for _, er := range r.rules {
		inSrc := er.srcNodes.has(s.idx)
		switch {
		case inSrc && er.viaNodes != nil:
			vis.or(er.dstNodes)
			vias = append(vias, er)
		case inSrc:
			vis.or(er.dstNodes)
			routes.all = routes.all || er.routesAll
			routes.exit = routes.exit || er.routesExit
			rb.AddSet(er.routeSet)
		}
		if er.dstNodes.has(s.idx) {
			vis.or(er.srcNodes)
			// Replies to sources behind a subnet router go back through it.
			rb.AddSet(er.srcOutside)
		}
		if er.dstSelf && !s.Tagged() {
			same := r.sameUser(s)
			if inSrc {
				vis.or(same)
			}
			vis.orAnd(er.srcNodes, same)
		}
	}
	routes.set, _ = rb.IPSet()
	return vis, routes, vias
}

// peers lists the nodes s can see with the routes each carries for s.
func (r *Result) peers(s *nodeState) []Peer {
	vis, routes, vias := r.visibility(s)
	out := make([]Peer, 0, vis.count())
	vis.each(func(i int) {
		if i == s.idx {
			return
		}
		ps := r.nodes[i]
		// Peers share their address slice; appending routes copies it.
		peer := Peer{ID: ps.ID, AllowedIPs: ps.peerAddrs[:len(ps.peerAddrs):len(ps.peerAddrs)]}
		if s.noIPv4 {
			peer.AllowedIPs = slices.DeleteFunc(slices.Clone(peer.AllowedIPs), func(p netip.Prefix) bool { return p.Addr().Is4() })
		}
		for _, p := range ps.subnets {
			if r.carriesRoute(s, i, p, routes, vias) {
				peer.AllowedIPs = append(peer.AllowedIPs, p)
				peer.PrimaryRoutes = append(peer.PrimaryRoutes, p)
			}
		}
		for _, p := range ps.exit {
			viaOK := slices.ContainsFunc(vias, func(er *evalRule) bool { return er.routesExit && er.viaNodes.has(i) })
			if routes.all || routes.exit || viaOK {
				peer.AllowedIPs = append(peer.AllowedIPs, p)
			}
		}
		out = append(out, peer)
	})
	return out
}

// carriesRoute reports whether peer i carries subnet p for viewer s, given
// the routes s may use without via (routes) and the via rules s is a
// source of. Access without via, and a standby router of p (which routes
// it through the primary whatever the rules say, as Tailscale does), use
// the subnet's primary; access through via grants alone uses the router
// elected among their via routers.
func (r *Result) carriesRoute(s *nodeState, i int, p netip.Prefix, routes routeAccess, vias []*evalRule) bool {
	primary := r.primary[p].idx == i
	if routes.covers(p) || slices.Contains(s.subnets, p) {
		return primary
	}
	for _, er := range vias {
		if er.routeSet.OverlapsPrefix(p) && r.viaRouter(er, p) == i {
			return true
		}
	}
	return false
}

// viaRouter returns the router elected for a via rule's sources to reach
// subnet p, or -1 if none of its via routers serves p.
func (r *Result) viaRouter(er *evalRule, p netip.Prefix) int {
	if s, ok := r.elected[PrimaryKey{Prefix: p, Via: er.viaKey}]; ok {
		return s.idx
	}
	return -1
}

// routeAccess is which routes of its peers a node may send traffic to.
type routeAccess struct {
	all, exit bool
	set       *netipx.IPSet
}

func (ra routeAccess) covers(p netip.Prefix) bool { return ra.all || ra.set.OverlapsPrefix(p) }

// packetFilter computes the filter rules of node s: every rule with a
// destination on s, restricted to those destinations.
func (r *Result) packetFilter(s *nodeState) []tailcfg.FilterRule {
	var out []tailcfg.FilterRule
	for _, er := range r.rules {
		if len(er.srcIPs) == 0 {
			continue // no sources (an empty group, or srcPosture): nothing to let in
		}
		if er.dstNodes.has(s.idx) {
			if fr, ok := r.filterRule(er, s, er.srcSet, false); ok {
				out = append(out, fr)
			}
		}
		if er.dstSelf && !s.Tagged() {
			var b netipx.IPSetBuilder
			// autogroup:self sources are users, groups, members or "*":
			// srcNodes holds exactly the nodes whose addresses are sources.
			same := newBitset(len(r.nodes))
			same.orAnd(er.srcNodes, r.sameUser(s))
			same.each(func(i int) {
				for _, p := range r.nodes[i].addrs {
					b.AddPrefix(p)
				}
			})
			src, _ := b.IPSet()
			if len(src.Prefixes()) == 0 {
				continue
			}
			if fr, ok := r.filterRule(er, s, src, true); ok {
				out = append(out, fr)
			}
		}
	}
	return out
}

// filterRule renders er for node s with the given source set. self selects
// the autogroup:self destinations instead of the others.
func (r *Result) filterRule(er *evalRule, s *nodeState, src *netipx.IPSet, self bool) (tailcfg.FilterRule, bool) {
	srcIPs := er.srcIPs
	if self {
		srcIPs = setStrings(src)
	}
	fr := tailcfg.FilterRule{SrcIPs: srcIPs, IPProto: slices.Clone(er.protos)}
	var capDsts []netip.Prefix
	for _, d := range er.dsts {
		isSelf := d.a.kind == aliasAutogroup && d.a.name == agSelf
		if isSelf != self {
			continue
		}
		var ips []string
		var pfx []netip.Prefix
		switch {
		case isSelf:
			pfx = s.addrs
		case d.a.kind == aliasAll:
			ips = []string{"*"}
		case er.viaNodes != nil && !er.viaNodes.has(s.idx) && (d.a.kind == aliasPrefixes || d.a.name == agInternet):
			continue
		case d.a.kind == aliasAutogroup && d.a.name == agInternet:
			if !s.isExitNode() {
				continue
			}
			pfx = internetPrefixes
		case d.a.kind == aliasPrefixes && er.caps != nil:
			// Capabilities go to nodes, never to the subnets behind them:
			// to the node's addresses the destination names (an IPv6
			// literal grants on the IPv6 address only).
			for _, a := range s.addrs {
				if d.a.set.ContainsPrefix(a) {
					pfx = append(pfx, a)
				}
			}
		case d.a.kind == aliasPrefixes:
			for _, p := range d.a.prefixes {
				if s.reach.OverlapsPrefix(p) || dstViaExit(d.a, s) {
					pfx = append(pfx, p)
				}
			}
		default:
			if !r.nodesOf(d.a).has(s.idx) {
				continue
			}
			pfx = s.addrs
		}
		if er.caps != nil {
			if len(ips) > 0 {
				pfx = slices.Concat(s.addrs)
			}
			capDsts = append(capDsts, pfx...)
			continue
		}
		for _, p := range pfx {
			ips = append(ips, prefixString(p))
		}
		for _, ip := range ips {
			for _, pr := range d.ports {
				fr.DstPorts = append(fr.DstPorts, tailcfg.NetPortRange{IP: ip, Ports: pr})
			}
		}
	}
	if er.caps != nil {
		if len(capDsts) == 0 {
			return fr, false
		}
		fr.IPProto = nil
		fr.CapGrant = []tailcfg.CapGrant{{Dsts: capDsts, CapMap: er.caps}}
		return fr, true
	}
	return fr, len(fr.DstPorts) > 0
}

// prefixString renders a single address without its /32 or /128.
func prefixString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// setStrings renders an IP set in FilterRule.SrcIPs syntax: single
// addresses, CIDR prefixes and "a-b" ranges.
func setStrings(s *netipx.IPSet) []string {
	var out []string
	for _, rg := range s.Ranges() {
		out = append(out, rangeString(rg))
	}
	return out
}

func rangeString(rg netipx.IPRange) string {
	if p, ok := rg.Prefix(); ok {
		return prefixString(p)
	}
	return rg.String()
}

// setStringsFrom is setStrings(s), reusing the strings of old's ranges
// (oldStrs, setStrings(old)) that s has too: a set patched by a few
// addresses renders only the ranges they touch.
func setStringsFrom(s, old *netipx.IPSet, oldStrs []string) []string {
	prev := old.Ranges()
	if len(prev) != len(oldStrs) {
		return setStrings(s)
	}
	ranges := s.Ranges()
	out := make([]string, 0, len(ranges))
	j := 0
	for _, rg := range ranges {
		for j < len(prev) && prev[j].From().Less(rg.From()) {
			j++
		}
		if j < len(prev) && prev[j] == rg {
			out = append(out, oldStrs[j])
			j++
			continue
		}
		out = append(out, rangeString(rg))
	}
	return out
}

// internetPrefixes is autogroup:internet: all of IPv4 and global unicast
// IPv6 (2000::/3), without private (RFC 1918, fc00::/7), link-local and
// tailnet ranges.
var internetPrefixes = func() []netip.Prefix {
	var b netipx.IPSetBuilder
	b.AddPrefix(exitV4)
	b.AddPrefix(netip.MustParsePrefix("2000::/3"))
	for _, s := range []string{
		"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
		"100.64.0.0/10", "fd7a:115c:a1e0::/48", "169.254.0.0/16", "fe80::/10",
	} {
		b.RemovePrefix(netip.MustParsePrefix(s))
	}
	s, _ := b.IPSet()
	return s.Prefixes()
}()

// addrIndex maps node addresses to node indexes, sorted by address.
type addrIndex []addrEntry

type addrEntry struct {
	addr netip.Addr
	idx  int
}

func compareAddrEntry(a, b addrEntry) int { return a.addr.Compare(b.addr) }

// find returns the position of the first entry at or after a.
func (ix addrIndex) find(a netip.Addr) int {
	i, _ := slices.BinarySearchFunc(ix, a, func(e addrEntry, a netip.Addr) int { return e.addr.Compare(a) })
	return i
}

// within adds to out the nodes with an address inside set.
func (ix addrIndex) within(set *netipx.IPSet, out bitset) {
	for _, rg := range set.Ranges() {
		for i := ix.find(rg.From()); i < len(ix) && ix[i].addr.Compare(rg.To()) <= 0; i++ {
			out.set(ix[i].idx)
		}
	}
}

// within returns the nodes with an address inside set.
func (r *Result) within(set *netipx.IPSet) bitset {
	out := newBitset(len(r.nodes))
	v4, v6 := r.addrIndexes()
	v4.within(set, out)
	v6.within(set, out)
	return out
}

// addrIndexes returns the node addresses of each family, sorted, building
// them on first use.
func (r *Result) addrIndexes() (v4, v6 addrIndex) {
	r.addrOnce.Do(func() {
		for i, s := range r.nodes {
			if s == nil {
				continue
			}
			for _, a := range s.addrs {
				if a.Addr().Is4() {
					r.addr4 = append(r.addr4, addrEntry{a.Addr(), i})
				} else {
					r.addr6 = append(r.addr6, addrEntry{a.Addr(), i})
				}
			}
		}
		// Addresses are mostly handed out in registration order, so each
		// family is usually in order already.
		for _, ix := range []addrIndex{r.addr4, r.addr6} {
			if !slices.IsSortedFunc(ix, compareAddrEntry) {
				slices.SortFunc(ix, compareAddrEntry)
			}
		}
	})
	return r.addr4, r.addr6
}
