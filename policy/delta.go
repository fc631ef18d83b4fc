package policy

import (
	"maps"
	"net/netip"
	"slices"

	"go4.org/netipx"
	"tailscale.com/tailcfg"
)

// Updating a Result in proportion to the change (UpdateNodes).
//
// When every node r holds keeps its position — nodes change in place or
// leave (a hole), and new ones have IDs above r's (a store hands out IDs
// in order, so a registration appends) — the new Result shares r's
// unchanged node states, and its bitsets are r's with the moved nodes'
// bits patched: copied where a bit changes, shared (possibly shorter, see
// bitset) where none does. The rules a changed node can match are patched
// the same way, their source address sets by adding and removing the
// moved nodes' addresses. What is left proportional to the tailnet is
// copying slices of pointers and words (the node, view and ID tables) and
// the per-user and per-tag index maps; no node is visited.

// move is one node added, changed in place or removed: its position and
// its state before (nil when added) and after (nil when removed).
type move struct {
	at       int
	old, new *nodeState
}

// cow patches bitsets of one Result being built, copying each shared one
// at most once.
type cow struct {
	n     int              // nodes in the Result
	owned map[*uint64]bool // bitsets already copied
}

func newCow(n int) *cow { return &cow{n: n, owned: map[*uint64]bool{}} }

// with returns b with position i set to v, copying b unless it was
// copied already.
func (c *cow) with(b bitset, i int, v bool) bitset {
	if b.has(i) == v {
		return b
	}
	if len(b) == 0 || !c.owned[&b[0]] || len(b) < (c.n+63)/64 {
		b = b.grown(c.n)
		c.owned[&b[0]] = true
	}
	if v {
		b.set(i)
	} else {
		b.clear(i)
	}
	return b
}

// patchIndex builds the Result of r with changed and removed applied
// (both normalized) without re-indexing, when that keeps every node of r
// in its position: a removed node leaves its position empty (a hole, its
// ID kept in the ID table), a node changed in place or coming back keeps
// or retakes its own, and an added node's ID is above r's. It returns nil
// otherwise, and when holes would be more than a quarter of the
// positions: re-indexing then compacts them.
func (r *Result) patchIndex(changed []Node, removed []tailcfg.NodeID) (*Result, []move) {
	var last tailcfg.NodeID
	if len(r.ids) > 0 {
		last = r.ids[len(r.ids)-1]
	}
	added, holes := 0, r.holes+len(removed)
	for _, nd := range changed {
		i, found := slices.BinarySearch(r.ids, nd.ID)
		switch {
		case found && r.nodes[i] == nil:
			holes-- // comes back to its place
		case !found && nd.ID <= last:
			return nil, nil // would land between r's nodes
		case !found:
			added++
		}
	}
	n := len(r.nodes) + added
	if holes > n/4 {
		return nil, nil
	}
	nr := r.p.newResult(r.opts, n)
	nr.holes = holes
	nr.nodes = append(nr.nodes, r.nodes...)
	nr.ids = r.ids
	if added > 0 {
		nr.ids = slices.Grow(slices.Clone(r.ids), added)
	}
	moves := make([]move, 0, len(changed)+len(removed))
	for _, id := range removed {
		old := r.state(id)
		nr.nodes[old.idx] = nil
		moves = append(moves, move{at: old.idx, old: old})
	}
	for _, nd := range changed {
		m := move{}
		if i, found := slices.BinarySearch(r.ids, nd.ID); found {
			m.at, m.old = i, r.nodes[i]
		} else {
			m.at = len(nr.nodes)
			nr.nodes = append(nr.nodes, nil)
			nr.ids = append(nr.ids, nd.ID)
		}
		m.new = newNodeState(nd, m.at)
		nr.nodes[m.at] = m.new
		moves = append(moves, m)
	}
	nr.patchIndexes(r, moves)
	for _, m := range moves {
		if m.new != nil {
			nr.finishState(m.new)
		}
	}
	return nr, moves
}

// patchIndexes gives nr (whose nodes are set) r's indexes with moves
// applied.
func (nr *Result) patchIndexes(r *Result, moves []move) {
	n := len(nr.nodes)
	c := newCow(n)
	nr.tagged, nr.member, nr.all = r.tagged, r.member, r.all
	nr.byUser, nr.byTag = maps.Clone(r.byUser), maps.Clone(r.byTag)
	nr.routers = r.routers
	starChanged := false
	for _, m := range moves {
		i := m.at
		if m.old != nil {
			nr.unindex(c, m.old)
		}
		starChanged = starChanged || !slices.Equal(m.old.subnetsOrNil(), m.new.subnetsOrNil())
		nr.all = c.with(nr.all, i, m.new != nil)
		nr.tagged = c.with(nr.tagged, i, m.new != nil && m.new.Tagged())
		nr.member = c.with(nr.member, i, m.new != nil && !m.new.Tagged())
		if m.new == nil {
			continue
		}
		if m.new.Tagged() {
			for _, tag := range m.new.Tags {
				nr.byTag[tag] = c.with(nr.byTag[tag], i, true)
			}
		} else {
			nr.byUser[m.new.User] = c.with(nr.byUser[m.new.User], i, true)
		}
		if m.new.routes() {
			nr.routers = insertSorted(nr.routers, i)
		}
	}
	nr.starSrc = r.starSrc
	if starChanged {
		nr.starSrc = nr.buildStarSrc()
	}
	nr.aliasNodes = make(map[aliasKey]bitset, len(r.aliasNodes))
	r.aliasMu.Lock()
	defer r.aliasMu.Unlock()
	for k, b := range r.aliasNodes {
		a := alias{kind: k.kind, name: k.name}
		for _, m := range moves {
			b = c.with(b, m.at, m.new != nil && nr.p.identityHas(a, m.new))
		}
		nr.aliasNodes[k] = b
	}
}

// unindex takes old (a state r held at old.idx) out of nr's per-user,
// per-tag and router indexes.
func (nr *Result) unindex(c *cow, old *nodeState) {
	i := old.idx
	if old.Tagged() {
		for _, tag := range old.Tags {
			nr.byTag[tag] = c.with(nr.byTag[tag], i, false)
		}
	} else {
		nr.byUser[old.User] = c.with(nr.byUser[old.User], i, false)
	}
	if old.routes() {
		nr.routers = slices.DeleteFunc(slices.Clone(nr.routers), func(j int) bool { return j == i })
	}
}

// insertSorted returns sorted with i added in order, in a copy: sorted
// may be shared.
func insertSorted(sorted []int, i int) []int {
	at, found := slices.BinarySearch(sorted, i)
	if found {
		return sorted
	}
	return slices.Insert(slices.Clip(sorted), at, i)
}

// identityHas reports whether identity alias a stands for node s: what
// nodesOf(a).has(s.idx) says, from s alone. Address aliases match no node
// here, as in nodesOf.
func (p *Policy) identityHas(a alias, s *nodeState) bool {
	return a.kind != aliasPrefixes && p.mayMatch(a, s, false)
}

// srcHas reports whether node s is among the nodes of a source list
// (resolveSrc's node set), from s alone.
func (p *Policy) srcHas(srcs []alias, s *nodeState) bool {
	for _, a := range srcs {
		switch {
		case a.kind == aliasAll, a.kind == aliasAutogroup && a.name == agDangerAll:
			return true
		case a.kind == aliasPrefixes:
			if containsAny(a.set, s.addrs) || overlapsAny(a.set, s.subnets) {
				return true
			}
		default:
			if p.identityHas(a, s) {
				return true
			}
		}
	}
	return false
}

// srcAddrs reports whether s's own addresses are in a source list's
// address set because an identity alias names s (resolveSrc's per-node
// part of the set).
func (p *Policy) srcAddrs(srcs []alias, s *nodeState) bool {
	for _, a := range srcs {
		switch {
		case a.kind == aliasAll, a.kind == aliasPrefixes, a.kind == aliasAutogroup && a.name == agDangerAll:
		default:
			if p.identityHas(a, s) {
				return true
			}
		}
	}
	return false
}

// srcFixed reports whether prefix x is in a source list's address set
// whatever nodes the list names: by an address alias, "*" or
// autogroup:danger-all.
func (r *Result) srcFixed(srcs []alias, x netip.Prefix) bool {
	for _, a := range srcs {
		switch {
		case a.kind == aliasAll:
			if r.starSrc.ContainsPrefix(x) {
				return true
			}
		case a.kind == aliasAutogroup && a.name == agDangerAll:
			return true
		case a.kind == aliasPrefixes:
			if a.set.ContainsPrefix(x) {
				return true
			}
		}
	}
	return false
}

// dstAliasHas reports whether destination alias a matches node s
// (dstNodesOf(a).has(s.idx)), from s alone.
func (p *Policy) dstAliasHas(a alias, s *nodeState) bool {
	if a.kind != aliasPrefixes {
		return p.identityHas(a, s)
	}
	return containsAny(a.set, s.addrs) || s.routes() && (overlapsAny(a.set, s.subnets) || dstViaExit(a, s))
}

// dstHas reports whether node s is among rule rl's destination nodes
// (evalRule.dstNodes) given whether it is one of the rule's via routers.
func (p *Policy) dstHas(rl *rule, s *nodeState, via bool) bool {
	for _, d := range rl.dsts {
		if d.a.kind == aliasAutogroup && d.a.name == agSelf {
			continue
		}
		if len(rl.via) > 0 && (d.a.kind == aliasPrefixes || d.a.name == agInternet) {
			if via && p.dstAliasHas(d.a, s) {
				return true
			}
			continue
		}
		if p.dstAliasHas(d.a, s) {
			return true
		}
	}
	return false
}

// containsAny reports whether set contains one of ps entirely.
func containsAny(set *netipx.IPSet, ps []netip.Prefix) bool {
	for _, p := range ps {
		if set.ContainsPrefix(p) {
			return true
		}
	}
	return false
}

// patchRule returns rule o of r resolved against nr, whose nodes are r's
// with moves applied in place, by patching the moved nodes into o's sets.
// It returns nil (resolve afresh) when "*" as a source changed meaning.
func (nr *Result) patchRule(r *Result, o *evalRule, moves []move) *evalRule {
	rl := o.rule
	if nr.starSrc != r.starSrc && slices.ContainsFunc(rl.srcs, func(a alias) bool { return a.kind == aliasAll }) {
		return nil
	}
	er := *o
	c := newCow(len(nr.nodes))
	key := srcKey(rl.srcs)
	if done, ok := nr.srcCache[key]; ok {
		er.srcSet, er.srcNodes, er.srcIPs, er.srcOutside = done.srcSet, done.srcNodes, done.srcIPs, done.srcOutside
	} else {
		nr.patchSrc(&er, c, moves)
		nr.srcCache[key] = &er
	}
	if o.viaNodes != nil {
		for _, m := range moves {
			via := m.new != nil && slices.ContainsFunc(rl.via, func(a alias) bool { return nr.p.identityHas(a, m.new) })
			er.viaNodes = c.with(er.viaNodes, m.at, via)
		}
	}
	for _, m := range moves {
		er.dstNodes = c.with(er.dstNodes, m.at, m.new != nil && nr.p.dstHas(rl, m.new, er.viaNodes.has(m.at)))
	}
	return &er
}

// patchSrc patches er's sources (copied from a rule of the previous
// Result) for moves: the node set bit by bit, the address set by the
// moved nodes' addresses.
func (nr *Result) patchSrc(er *evalRule, c *cow, moves []move) {
	srcs := er.rule.srcs
	var drop, add []netip.Prefix
	for _, m := range moves {
		er.srcNodes = c.with(er.srcNodes, m.at, m.new != nil && nr.p.srcHas(srcs, m.new))
		was := m.old != nil && nr.p.srcAddrs(srcs, m.old)
		is := m.new != nil && nr.p.srcAddrs(srcs, m.new)
		if was && (!is || !slices.Equal(m.old.addrs, m.new.addrs)) {
			drop = append(drop, m.old.addrs...)
		}
		if is {
			add = append(add, m.new.addrs...)
		}
	}
	// An address stays when the list names it anyway, or another node
	// named by identity has it too.
	drop = slices.DeleteFunc(drop, func(x netip.Prefix) bool {
		return nr.srcFixed(srcs, x) || nr.srcAddrHeld(srcs, x)
	})
	if len(drop) == 0 && len(add) == 0 {
		return
	}
	var b netipx.IPSetBuilder
	b.AddSet(er.srcSet)
	for _, x := range drop {
		b.RemovePrefix(x)
	}
	for _, x := range add {
		b.AddPrefix(x)
	}
	old, oldIPs := er.srcSet, er.srcIPs
	er.srcSet, _ = b.IPSet()
	er.srcIPs = setStringsFrom(er.srcSet, old, oldIPs)
	var ob netipx.IPSetBuilder
	ob.AddSet(er.srcSet)
	ob.RemoveSet(tailnetRanges)
	er.srcOutside, _ = ob.IPSet()
}

// srcAddrHeld reports whether a node of nr with address x is named by an
// identity alias of srcs.
func (nr *Result) srcAddrHeld(srcs []alias, x netip.Prefix) bool {
	ix, v6 := nr.addrIndexes()
	if !x.Addr().Is4() {
		ix = v6
	}
	for at := ix.find(x.Addr()); at < len(ix) && ix[at].addr == x.Addr(); at++ {
		if nr.p.srcAddrs(srcs, nr.nodes[ix[at].idx]) {
			return true
		}
	}
	return false
}

// differAt reports whether bitsets a and b, over the same positions,
// differ at a moved node's position.
func differAt(a, b bitset, moves []move) bool {
	for _, m := range moves {
		if a.has(m.at) != b.has(m.at) {
			return true
		}
	}
	return false
}

// affected collects the nodes whose views an update changes: a bitset over
// the new Result's positions, and the IDs of removed nodes. Of the
// affected nodes, those in filter, ssh and caps may have a new packet
// filter, SSH policy or capabilities; the others' views differ in their
// peers (and own routes) only. Those three are kept only while positions
// are (ident).
type affected struct {
	r, nr             *Result
	ident             bool // r's positions are nr's
	bits              bitset
	gone              map[tailcfg.NodeID]bool
	filter, ssh, caps bitset
}

func newAffected(r, nr *Result, ident bool) *affected {
	n := len(nr.nodes)
	return &affected{r: r, nr: nr, ident: ident, bits: newBitset(n), gone: map[tailcfg.NodeID]bool{},
		filter: newBitset(n), ssh: newBitset(n), caps: newBitset(n)}
}

// redoAll marks node id's whole view as changed (a changed node).
func (a *affected) redoAll(id tailcfg.NodeID) {
	if s := a.nr.state(id); s != nil {
		a.filter.set(s.idx)
		a.ssh.set(s.idx)
		a.caps.set(s.idx)
	}
}

// addFilter adds the nodes of b, whose packet filters may change.
func (a *affected) addFilter(res *Result, b bitset) {
	a.add(res, b)
	if a.ident {
		a.filter.or(b)
	}
}

// addSSH adds the nodes of b, whose SSH policies may change.
func (a *affected) addSSH(res *Result, b bitset) {
	a.add(res, b)
	if a.ident {
		a.ssh.or(b)
	}
}

func (a *affected) addID(id tailcfg.NodeID) {
	if s := a.nr.state(id); s != nil {
		a.bits.set(s.idx)
	} else {
		a.gone[id] = true
	}
}

// add adds the nodes of b, a bitset over res's positions.
func (a *affected) add(res *Result, b bitset) {
	if res == a.nr || a.ident {
		a.bits.or(b)
		return
	}
	b.each(func(i int) { a.addID(res.nodes[i].ID) })
}

// ids returns the affected nodes' IDs, sorted.
func (a *affected) ids() []tailcfg.NodeID {
	out := make([]tailcfg.NodeID, 0, a.bits.count()+len(a.gone))
	a.bits.each(func(i int) {
		if a.nr.nodes[i] != nil { // a hole: a node removed now, in gone
			out = append(out, a.nr.ids[i])
		}
	})
	for id := range a.gone {
		out = append(out, id)
	}
	if len(a.gone) > 0 {
		slices.Sort(out)
	}
	return out
}
