package policy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"go4.org/netipx"
	"tailscale.com/tailcfg"

	"github.com/tailplane/tailplane/schema"
)

// Result is a policy evaluated against one node inventory. It resolves
// every rule's sources and destinations once; per-node views are computed
// on first use and cached, so asking for one node does not compute the
// others. A Result is safe for concurrent use.
type Result struct {
	p *Policy
	// nodes are sorted by ID; a node's position (nodeState.idx) is its
	// bit in every bitset. States are immutable and shared with the
	// Results UpdateNodes derives while the node stays unchanged. A nil
	// entry is a hole a removed node left (see UpdateNodes); holes holds
	// their number, and ids their IDs, in no bitset.
	nodes   []*nodeState
	holes   int
	ids     []tailcfg.NodeID  // the positions' IDs, sorted; shared with views (PeerSet), never modified
	byUser  map[string]bitset // user-owned nodes by login
	byTag   map[string]bitset // tagged nodes by tag
	routers []int             // nodes with approved subnet or exit routes, by position
	tagged  bitset
	member  bitset
	all     bitset
	primary map[netip.Prefix]*nodeState // the subnets' elected primaries
	elected map[PrimaryKey]*nodeState   // every election's primary, via ones included
	// primaries are the subnets each router is primary for, sorted.
	primaries map[tailcfg.NodeID][]netip.Prefix

	starSrc *netipx.IPSet // what "*" means as a source
	rules   []*evalRule

	opts Options

	srcCache map[string]*evalRule // resolved sources by srcKey, while resolving rules

	// The node addresses, sorted (IPv4 and IPv6 apart), built on first
	// use: only rules with address aliases need them.
	addrOnce     sync.Once
	addr4, addr6 addrIndex

	aliasMu    sync.Mutex // guards aliasNodes
	aliasNodes map[aliasKey]bitset

	// prior holds, by position, the previous Result's view of a node
	// whose view the update that made r affected (nil: none); its
	// filter, SSH policy and capabilities are still right unless the
	// node is in redoFilter, redoSSH or redoCaps. Immutable.
	prior                         []*NodeView
	redoFilter, redoSSH, redoCaps bitset

	mu    sync.Mutex  // guards the fields below
	views []*NodeView // by position; nil until computed
}

// evalRule is a rule with its aliases resolved against the inventory.
type evalRule struct {
	*rule
	srcSet *netipx.IPSet
	srcIPs []string // srcSet in FilterRule.SrcIPs syntax
	// srcOutside is srcSet outside the tailnet ranges: the sources that
	// can sit behind a subnet router.
	srcOutside *netipx.IPSet
	srcNodes   bitset // nodes inside the source set
	dstNodes   bitset // nodes a non-self destination matches
	dstSelf    bool   // the rule has an autogroup:self destination
	// Which routes of other nodes the sources may use: all of them, the
	// exit routes (autogroup:internet), or those overlapping routeSet.
	routesAll, routesExit bool
	routeSet              *netipx.IPSet
	// viaNodes are the routers a grant's "via" names; nil without via.
	// Such a rule's address destinations go only to them.
	viaNodes bitset
	viaKey   string // the via tags as an election key (PrimaryKey.Via)
}

// Options tune Evaluate. The zero value works.
type Options struct {
	// ControlURL is the base URL of the coordination server, used in the
	// callback URL of SSH "check" rules. Empty means "https://unused".
	ControlURL string

	// Primaries is a previous outcome of the primary-router elections
	// (Result.Primaries), for Evaluate to continue from: a primary that is
	// still an online router of its subnet stays primary. A server
	// persists it so that a restart does not move subnets between
	// routers. Nil means no history: every subnet goes to its first
	// registered online router. Update ignores it and continues from the
	// Result it is called on.
	Primaries Primaries
}

func (o Options) controlURL() string {
	if o.ControlURL == "" {
		return "https://unused"
	}
	return strings.TrimSuffix(o.ControlURL, "/")
}

// Evaluate resolves the policy against nodes. Of nodes sharing an ID, the
// first is kept. The primary-router elections continue from
// opts.Primaries (nil: none yet); see PrimaryKey.
func (p *Policy) Evaluate(nodes []Node, opts Options) *Result {
	prev := opts.Primaries
	opts.Primaries = nil // Update continues from the Result, not from this
	r := p.index(nodes, opts, nil)
	r.electSubnets(prev)
	r.resolveRules(nil)
	r.electVia(prev)
	return r
}

// index builds a Result's node states and indexes, without the rules and
// elections. The states of nodes prev already holds unchanged are taken
// from it (shared when they keep their position).
func (p *Policy) index(nodes []Node, opts Options, prev *Result) *Result {
	sorted := sortedByID(nodes)
	n := len(sorted)
	r := p.newResult(opts, n)
	r.tagged, r.member, r.all = newBitset(n), newBitset(n), newBitset(n)
	var fresh []*nodeState
	for i, nd := range sorted {
		s := prev.unchanged(&nd)
		switch {
		case s == nil:
			s = newNodeState(nd, i)
			fresh = append(fresh, s)
		case s.idx != i:
			c := *s
			c.idx = i
			s = &c
		}
		r.nodes = append(r.nodes, s)
		r.all.set(i)
		if s.Tagged() {
			r.tagged.set(i)
			for _, tag := range s.Tags {
				b, ok := r.byTag[tag]
				if !ok {
					b = newBitset(n)
					r.byTag[tag] = b
				}
				b.set(i)
			}
		} else {
			r.member.set(i)
			b, ok := r.byUser[s.User]
			if !ok {
				b = newBitset(n)
				r.byUser[s.User] = b
			}
			b.set(i)
		}
		if s.routes() {
			r.routers = append(r.routers, i)
		}
	}
	r.starSrc = r.buildStarSrc()
	r.ids = make([]tailcfg.NodeID, len(r.nodes))
	for i, s := range r.nodes {
		r.ids[i] = s.ID
	}
	if prev != nil && slices.Equal(prev.ids, r.ids) {
		r.ids = prev.ids // views carried over share one table
	}
	for _, s := range fresh {
		r.finishState(s)
	}
	return r
}

// newResult returns an empty Result of p sized for n nodes.
func (p *Policy) newResult(opts Options, n int) *Result {
	return &Result{
		p:          p,
		opts:       opts,
		nodes:      make([]*nodeState, 0, n),
		byUser:     map[string]bitset{},
		byTag:      map[string]bitset{},
		aliasNodes: map[aliasKey]bitset{},
		primary:    map[netip.Prefix]*nodeState{},
		elected:    map[PrimaryKey]*nodeState{},
		primaries:  map[tailcfg.NodeID][]netip.Prefix{},
		views:      make([]*NodeView, n),
	}
}

// buildStarSrc returns what "*" means as a source in r: the tailnet
// ranges and every approved subnet.
func (r *Result) buildStarSrc() *netipx.IPSet {
	var star netipx.IPSetBuilder
	star.AddSet(cgnatSrc)
	star.AddPrefix(schema.DefaultIPv6)
	for _, i := range r.routers {
		for _, sub := range r.nodes[i].subnets {
			star.AddPrefix(sub)
		}
	}
	set, _ := star.IPSet()
	return set
}

// finishState derives what a new node state needs from the policy (its
// nodeAttrs), once r indexes it.
func (r *Result) finishState(s *nodeState) {
	s.noIPv4 = r.p.disableIPv4 || r.hasAttr(s, attrDisableIPv4)
	s.peerAddrs = s.visibleAddrs()
}

// state returns the state of node id, or nil if r does not hold it.
func (r *Result) state(id tailcfg.NodeID) *nodeState {
	if i, ok := slices.BinarySearch(r.ids, id); ok {
		return r.nodes[i]
	}
	return nil
}

// sortedByID returns nodes ordered by ID, of nodes sharing an ID the first
// only. A server passes its nodes in no particular order; rather than
// moving the large Node values around while sorting, it sorts their
// positions (by ID, then position, which keeps it stable) and copies each
// node once. Input already in order is only checked and copied.
func sortedByID(nodes []Node) []Node {
	byID := func(a, b Node) int { return cmp.Compare(a.ID, b.ID) }
	if slices.IsSortedFunc(nodes, byID) {
		return slices.CompactFunc(slices.Clone(nodes), func(a, b Node) bool { return a.ID == b.ID })
	}
	out := make([]Node, 0, len(nodes))
	if bySlot, ok := idSlots(nodes); ok {
		for _, i := range bySlot {
			if i >= 0 {
				out = append(out, nodes[i])
			}
		}
		return out
	}
	pos := make([]int32, len(nodes))
	for i := range pos {
		pos[i] = int32(i)
	}
	slices.SortFunc(pos, func(a, b int32) int {
		return cmp.Or(cmp.Compare(nodes[a].ID, nodes[b].ID), cmp.Compare(a, b))
	})
	for _, i := range pos {
		if len(out) > 0 && out[len(out)-1].ID == nodes[i].ID {
			continue
		}
		out = append(out, nodes[i])
	}
	return out
}

// idSlots places each node's position at its ID's offset from the
// smallest ID (-1: no node), the first of nodes sharing an ID: a counting
// sort, for the usual inventory whose IDs are a store's sequence with
// few gaps. ok is false when the IDs spread over more than four slots a
// node.
func idSlots(nodes []Node) (slots []int32, ok bool) {
	lo, hi := nodes[0].ID, nodes[0].ID
	for _, n := range nodes {
		lo, hi = min(lo, n.ID), max(hi, n.ID)
	}
	if hi-lo >= tailcfg.NodeID(4*len(nodes)) {
		return nil, false
	}
	slots = make([]int32, hi-lo+1)
	for i := range slots {
		slots[i] = -1
	}
	for i, n := range nodes {
		if s := &slots[n.ID-lo]; *s < 0 {
			*s = int32(i)
		}
	}
	return slots, true
}

// resolveRules resolves the policy's rules against r's inventory. carry,
// when not nil, may return an already resolved rule to take over instead;
// it returns nil for a rule to resolve.
func (r *Result) resolveRules(carry func(k int) *evalRule) {
	r.srcCache = map[string]*evalRule{}
	r.rules = make([]*evalRule, len(r.p.rules))
	for k, rl := range r.p.rules {
		if carry != nil {
			if er := carry(k); er != nil {
				r.rules[k] = er
				continue
			}
		}
		r.rules[k] = r.resolveRule(rl)
	}
	r.srcCache = nil
}

// cgnatSrc is the tailnet IPv4 range as Tailscale spells "*" in sources:
// 100.64.0.0/10 without the 100.115.92.0/23 block it reserves.
var cgnatSrc = func() *netipx.IPSet {
	var b netipx.IPSetBuilder
	b.AddPrefix(schema.DefaultIPv4)
	b.RemovePrefix(netip.MustParsePrefix("100.115.92.0/23"))
	s, _ := b.IPSet()
	return s
}()

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// resolveRule resolves one rule's sources and destinations.
func (r *Result) resolveRule(rl *rule) *evalRule {
	er := &evalRule{rule: rl, dstNodes: newBitset(len(r.nodes))}
	// Many rules share their sources (a group, a tag): resolve each
	// distinct source list once.
	key := srcKey(rl.srcs)
	if prev, ok := r.srcCache[key]; ok {
		er.srcSet, er.srcNodes, er.srcIPs, er.srcOutside = prev.srcSet, prev.srcNodes, prev.srcIPs, prev.srcOutside
	} else {
		er.srcSet, er.srcNodes = r.resolveSrc(rl.srcs)
		er.srcIPs = setStrings(er.srcSet)
		var ob netipx.IPSetBuilder
		ob.AddSet(er.srcSet)
		ob.RemoveSet(tailnetRanges)
		er.srcOutside, _ = ob.IPSet()
		r.srcCache[key] = er
	}
	if len(rl.via) > 0 {
		er.viaKey = viaKey(rl.via)
		er.viaNodes = newBitset(len(r.nodes))
		for _, v := range rl.via {
			er.viaNodes.or(r.nodesOf(v))
		}
	}
	var rb netipx.IPSetBuilder
	for _, d := range rl.dsts {
		switch {
		case d.a.kind == aliasAll:
			er.routesAll = true
		case d.a.kind == aliasAutogroup && d.a.name == agInternet:
			er.routesExit = true
		case d.a.kind == aliasPrefixes:
			rb.AddSet(d.a.set)
		}
		if d.a.kind == aliasAutogroup && d.a.name == agSelf {
			er.dstSelf = true
			continue
		}
		if er.viaNodes != nil && (d.a.kind == aliasPrefixes || d.a.name == agInternet) {
			er.dstNodes.orAnd(r.dstNodesOf(d.a), er.viaNodes)
			continue
		}
		er.dstNodes.or(r.dstNodesOf(d.a))
	}
	er.routeSet, _ = rb.IPSet()
	return er
}

// srcKey identifies a list of source aliases.
func srcKey(srcs []alias) string {
	var b strings.Builder
	for _, a := range srcs {
		fmt.Fprintf(&b, "%d:%s\x00", a.kind, a.name)
	}
	return b.String()
}

// nodesOf returns the nodes an identity alias (user, group, tag, "*",
// autogroup) stands for. Address aliases match no node here. Results are
// cached per alias; callers must not modify them.
func (r *Result) nodesOf(a alias) bitset {
	key := aliasKey{a.kind, a.name}
	r.aliasMu.Lock()
	b, ok := r.aliasNodes[key]
	r.aliasMu.Unlock()
	if ok {
		return b
	}
	b = r.computeNodesOf(a)
	r.aliasMu.Lock()
	r.aliasNodes[key] = b
	r.aliasMu.Unlock()
	return b
}

// aliasKey identifies an identity alias in Result's cache.
type aliasKey struct {
	kind aliasKind
	name string
}

func (r *Result) computeNodesOf(a alias) bitset {
	out := newBitset(len(r.nodes))
	switch a.kind {
	case aliasAll:
		out.or(r.all)
	case aliasUser:
		out.or(r.byUser[a.name])
	case aliasDomain:
		for login, b := range r.byUser {
			if _, d, ok := strings.Cut(login, "@"); ok && d == a.name {
				out.or(b)
			}
		}
	case aliasGroup:
		for _, u := range r.p.sy.groups[a.name] {
			out.or(r.byUser[u])
		}
	case aliasTag:
		out.or(r.byTag[a.name])
	case aliasAutogroup:
		switch a.name {
		case agMember:
			out.or(r.member)
		case agTagged:
			out.or(r.tagged)
		case agDangerAll:
			out.or(r.all)
		case agAdmin, agOwner:
			for login, u := range r.p.users {
				if inRoleGroup(u, a.name) {
					out.or(r.byUser[login])
				}
			}
		case agInternet:
			for _, s := range r.nodes {
				if s != nil && s.isExitNode() {
					out.set(s.idx)
				}
			}
		}
	}
	return out
}

// resolveSrc returns the address set of a rule's sources and the nodes
// inside it (by address or approved subnet).
func (r *Result) resolveSrc(srcs []alias) (*netipx.IPSet, bitset) {
	var b netipx.IPSetBuilder
	nodes := newBitset(len(r.nodes))
	for _, a := range srcs {
		switch {
		case a.kind == aliasAll:
			b.AddSet(r.starSrc)
			nodes.or(r.all)
		case a.kind == aliasAutogroup && a.name == agDangerAll:
			b.AddPrefix(exitV4)
			b.AddPrefix(exitV6)
			nodes.or(r.all)
		case a.kind == aliasPrefixes:
			b.AddSet(a.set)
			nodes.or(r.within(a.set))
			for _, i := range r.routers {
				if overlapsAny(a.set, r.nodes[i].subnets) {
					nodes.set(i)
				}
			}
		default:
			ns := r.nodesOf(a)
			nodes.or(ns)
			ns.each(func(i int) {
				for _, p := range r.nodes[i].addrs {
					b.AddPrefix(p)
				}
			})
		}
	}
	set, _ := b.IPSet()
	return set, nodes
}

// dstNodesOf returns the nodes a destination alias matches: the nodes it
// names, or for addresses the nodes that receive traffic for them.
func (r *Result) dstNodesOf(a alias) bitset {
	if a.kind != aliasPrefixes {
		return r.nodesOf(a)
	}
	out := r.within(a.set)
	for _, i := range r.routers {
		if s := r.nodes[i]; overlapsAny(a.set, s.subnets) || dstViaExit(a, s) {
			out.set(i)
		}
	}
	return out
}

// dstViaExit reports whether an exit node carries traffic to a: an address
// destination outside the tailnet and the node's own subnets.
func dstViaExit(a alias, s *nodeState) bool {
	if !s.isExitNode() {
		return false
	}
	for _, p := range a.prefixes {
		if !tailnetRanges.ContainsPrefix(p) && !p.Addr().IsPrivate() {
			return true
		}
	}
	return false
}

var tailnetRanges = func() *netipx.IPSet {
	var b netipx.IPSetBuilder
	b.AddPrefix(schema.DefaultIPv4)
	b.AddPrefix(schema.DefaultIPv6)
	s, _ := b.IPSet()
	return s
}()

func overlapsAny(set *netipx.IPSet, ps []netip.Prefix) bool {
	for _, p := range ps {
		if set.OverlapsPrefix(p) {
			return true
		}
	}
	return false
}
