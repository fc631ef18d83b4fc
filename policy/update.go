package policy

import (
	"net/netip"
	"slices"

	"tailscale.com/tailcfg"
)

// Update evaluates the policy against a changed inventory (the complete
// new node list), reusing whatever the change cannot affect. It returns
// the new Result and the IDs of the nodes whose views may differ from r's
// (changed, added and removed nodes included): the coordination server
// resends those and keeps the others. It compares nodes with r's (a pass
// over the inventory) and hands the difference to UpdateNodes; a caller
// that knows what changed calls UpdateNodes itself.
//
// The primary-router elections continue from r's (see PrimaryKey):
// Update(nodes) elects as Evaluate(nodes, Options{Primaries:
// r.Primaries()}) would. A node that only goes offline or online
// (Node.Offline) changes nothing but elections: it affects the routers
// whose election moves and the nodes that see them and may use the subnet.
func (r *Result) Update(nodes []Node) (*Result, []tailcfg.NodeID) {
	changed, removed := r.diff(sortedByID(nodes))
	return r.UpdateNodes(changed, removed)
}

// UpdateNodes is Update for a change given as what changed: the new state
// of every node added or changed (nodes r holds as given are ignored; of
// nodes sharing an ID the first is kept), and the IDs of the nodes
// removed (unknown ones are ignored; an ID both changed and removed is
// removed). Its result equals Update's with the inventory so changed.
//
// Only the rules whose aliases can match a changed node (before or after
// the change) are resolved again, and those by patching the changed
// nodes' places in their sets; the others, and the views r has already
// computed for unaffected nodes, are carried over. A change that keeps
// every other node in its place (nodes changed in place, nodes added with
// IDs above r's) reuses r's node states and indexes as they are, so a
// registration costs in proportion to the change and the nodes whose
// views it affects, not to the tailnet; any other change re-indexes the
// inventory first.
func (r *Result) UpdateNodes(changed []Node, removed []tailcfg.NodeID) (*Result, []tailcfg.NodeID) {
	changed, removed = r.normalize(changed, removed)
	nr, moves := r.patchIndex(changed, removed)
	fast := nr != nil
	if !fast {
		nr = r.p.index(r.inventoryWith(changed, removed), r.opts, r)
	}
	prev := r.Primaries()
	nr.electSubnets(prev)

	ruleChanged := r.ruleChanges(nr, changed, removed)
	// Rules no changed node can match resolve as before: take them over;
	// the others are patched where the change kept node positions.
	carried := make([]bool, len(r.p.rules))
	var move *remap
	if !fast {
		move = newRemap(r, nr)
	}
	nr.resolveRules(func(k int) *evalRule {
		o := r.rules[k]
		if !r.ruleTouched(nr, o.rule, ruleChanged) {
			carried[k] = true
			if fast {
				return o // positions kept; a shorter bitset lacks only new nodes
			}
			return move.rule(o)
		}
		if fast {
			return nr.patchRule(r, o, moves)
		}
		return nil
	})
	nr.electVia(prev)
	elections := electionChanges(r, nr)
	if len(ruleChanged) == 0 && len(elections) == 0 {
		nr.adoptViews(r, nil, fast)
		return nr, nil
	}

	aff := newAffected(r, nr, fast)
	for id := range ruleChanged {
		aff.addID(id)
		aff.redoAll(id)
		// Whoever saw the node, or sees it now, gets a new peer entry.
		for _, res := range []*Result{r, nr} {
			if s := res.state(id); s != nil {
				vis, _, _ := res.visibility(s)
				aff.add(res, vis)
			}
		}
	}
	for k := range r.rules {
		if !carried[k] {
			r.ruleAffected(nr, k, ruleChanged, moves, aff)
		}
	}
	// SSH rules whose principals or recorders include a changed node.
	for _, sr := range r.p.ssh {
		for _, res := range []*Result{r, nr} {
			res.sshAffected(sr, ruleChanged, aff.addSSH)
		}
	}
	electionsAffected(r, nr, elections, aff)

	nr.adoptViews(r, aff, fast)
	return nr, aff.ids()
}

// ruleAffected adds to aff the views rule k's re-resolution changes.
func (r *Result) ruleAffected(nr *Result, k int, changed map[tailcfg.NodeID]bool, moves []move, aff *affected) {
	o, n := r.rules[k], nr.rules[k]
	var srcChanged, dstChanged bool
	if aff.ident {
		// Positions are kept: only the moved nodes' bits can differ.
		srcChanged = !slices.Equal(o.srcIPs, n.srcIPs) || differAt(o.srcNodes, n.srcNodes, moves)
		dstChanged = differAt(o.dstNodes, n.dstNodes, moves)
	} else {
		srcChanged = !slices.Equal(o.srcIPs, n.srcIPs) || !sameIDs(r, o.srcNodes, nr, n.srcNodes)
		dstChanged = !sameIDs(r, o.dstNodes, nr, n.dstNodes)
	}
	if srcChanged {
		// The destinations' peer lists change, and their filters when
		// the source addresses did; other sources are unaffected (their
		// peers are the destinations).
		add := aff.add
		if !slices.Equal(o.srcIPs, n.srcIPs) {
			add = aff.addFilter
		}
		add(r, o.dstNodes)
		add(nr, n.dstNodes)
	}
	if n.dstSelf {
		// A node's own user's sources are in its filter: a changed
		// node's fellow users (before and after) get new ones, even when
		// the rule's sources as a whole stay the same (a node moving
		// between users).
		for id := range changed {
			for _, res := range []*Result{r, nr} {
				if s := res.state(id); s != nil {
					aff.addFilter(res, res.sameUser(s))
				}
			}
		}
	}
	if dstChanged {
		// Every source gains or loses a peer.
		aff.add(r, o.srcNodes)
		aff.add(nr, n.srcNodes)
	}
}

// diff compares r's nodes with sorted (ordered by ID, without duplicates)
// and returns the nodes added or changed and the IDs removed.
func (r *Result) diff(sorted []Node) (changed []Node, removed []tailcfg.NodeID) {
	live := r.nodes
	if r.holes > 0 {
		live = slices.DeleteFunc(slices.Clone(live), func(s *nodeState) bool { return s == nil })
	}
	i := 0
	for _, nd := range sorted {
		for i < len(live) && live[i].ID < nd.ID {
			removed = append(removed, live[i].ID)
			i++
		}
		if i < len(live) && live[i].ID == nd.ID {
			if !sameNode(&live[i].Node, &nd, true) {
				changed = append(changed, nd)
			}
			i++
			continue
		}
		changed = append(changed, nd)
	}
	for ; i < len(live); i++ {
		removed = append(removed, live[i].ID)
	}
	return changed, removed
}

// normalize orders changed by ID, keeps the first of nodes sharing an ID,
// and drops the nodes r holds as they are and those also removed; removed
// keeps the IDs r holds, sorted and without duplicates.
func (r *Result) normalize(changed []Node, removed []tailcfg.NodeID) ([]Node, []tailcfg.NodeID) {
	gone := slices.Clone(removed)
	slices.Sort(gone)
	gone = slices.Compact(gone)
	gone = slices.DeleteFunc(gone, func(id tailcfg.NodeID) bool { return r.state(id) == nil })
	var out []Node
	for _, nd := range sortedByID(changed) {
		if _, ok := slices.BinarySearch(gone, nd.ID); ok {
			continue
		}
		if o := r.state(nd.ID); o != nil && sameNode(&o.Node, &nd, true) {
			continue
		}
		out = append(out, nd)
	}
	return out, gone
}

// inventoryWith returns r's nodes with changed (normalized) applied and
// removed (normalized) taken out, ordered by ID.
func (r *Result) inventoryWith(changed []Node, removed []tailcfg.NodeID) []Node {
	out := make([]Node, 0, len(r.nodes)+len(changed))
	c := 0
	for _, s := range r.nodes {
		if s == nil {
			continue
		}
		for c < len(changed) && changed[c].ID < s.ID {
			out = append(out, changed[c])
			c++
		}
		if c < len(changed) && changed[c].ID == s.ID {
			out = append(out, changed[c])
			c++
			continue
		}
		if _, gone := slices.BinarySearch(removed, s.ID); !gone {
			out = append(out, s.Node)
		}
	}
	return append(out, changed[c:]...)
}

// ruleChanges returns the IDs of the nodes added, removed or changed in a
// way rules can see. Connecting, disconnecting and the registration time
// only matter to elections (electionsAffected), so they do not count.
func (r *Result) ruleChanges(nr *Result, changed []Node, removed []tailcfg.NodeID) map[tailcfg.NodeID]bool {
	out := map[tailcfg.NodeID]bool{}
	for _, nd := range changed {
		old, s := r.state(nd.ID), nr.state(nd.ID)
		if old == nil || !sameNode(&old.Node, &s.Node, false) || old.noIPv4 != s.noIPv4 {
			out[nd.ID] = true
		}
	}
	for _, id := range removed {
		out[id] = true
	}
	return out
}

// electionsAffected adds to aff the views an election moving a subnet to
// another router changes: both routers' and those of the nodes that see
// either and may carry the subnet.
func electionsAffected(r, nr *Result, elections []PrimaryKey, aff *affected) {
	for _, k := range elections {
		for _, res := range []*Result{r, nr} {
			s, ok := res.elected[k]
			if !ok {
				continue
			}
			aff.addID(s.ID)
			vis, _, _ := res.visibility(s)
			seen := newBitset(len(res.nodes))
			seen.orAnd(vis, res.routeViewers(k.Prefix))
			aff.add(res, seen)
		}
	}
}

// sshAffected adds, through add, the nodes whose SSH policy under rule sr
// may change when the nodes in changed change, as r sees them: the rule's
// targets when a changed node is among its principals (for autogroup:self
// only the nodes of that node's user) and, for localpart rules, which
// sources receive too, the changed sources' fellow user nodes. A changed
// recorder changes every session the rule allows.
func (r *Result) sshAffected(sr *sshRule, changed map[tailcfg.NodeID]bool, add func(*Result, bitset)) {
	var srcHits []*nodeState
	recorder := false
	for id := range changed {
		s := r.state(id)
		if s == nil {
			continue
		}
		if r.anyHas(sr.srcs, s) {
			srcHits = append(srcHits, s)
		}
		recorder = recorder || r.anyHas(sr.recorders, s)
	}
	if len(srcHits) == 0 && !recorder {
		return
	}
	if recorder {
		for _, a := range sr.srcs {
			add(r, r.nodesOf(a))
		}
	}
	for _, d := range sr.dsts {
		if d.kind == aliasAutogroup && d.name == agSelf {
			if recorder {
				add(r, r.member)
			}
			for _, s := range srcHits {
				add(r, r.sameUser(s))
			}
			continue
		}
		add(r, r.nodesOf(d))
	}
	if len(sr.localparts) > 0 {
		for _, s := range srcHits {
			add(r, r.sameUser(s))
		}
	}
}

// anyHas reports whether one of the identity aliases as stands for s.
func (r *Result) anyHas(as []alias, s *nodeState) bool {
	for _, a := range as {
		if r.nodesOf(a).has(s.idx) {
			return true
		}
	}
	return false
}

// adoptViews copies r's cached views of nodes not in aff (nil: none
// affected) into nr. With positions kept (fast), that is a copy of r's
// view table, and the old views of affected nodes are kept as nr's prior
// views: their filters, SSH policies and capabilities are reused where
// aff says the change leaves them (see computeView).
func (nr *Result) adoptViews(r *Result, aff *affected, fast bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	nr.mu.Lock()
	defer nr.mu.Unlock()
	if fast {
		for i, v := range r.views {
			if nr.views[i] == nil && nr.nodes[i] != nil {
				nr.views[i] = v
			}
		}
		if aff == nil {
			return
		}
		aff.bits.each(func(i int) {
			if i < len(r.views) && r.views[i] != nil && nr.nodes[i] != nil {
				if nr.prior == nil {
					nr.prior = make([]*NodeView, len(nr.nodes))
				}
				nr.prior[i] = r.views[i]
			}
			nr.views[i] = nil
		})
		nr.redoFilter, nr.redoSSH, nr.redoCaps = aff.filter, aff.ssh, aff.caps
		return
	}
	for i, v := range r.views {
		if v == nil {
			continue
		}
		s := nr.state(r.ids[i])
		if s != nil && (aff == nil || !aff.bits.has(s.idx)) && nr.views[s.idx] == nil {
			nr.views[s.idx] = v
		}
	}
}

// unchanged returns r's state of nd when r is not nil and holds nd as is.
func (r *Result) unchanged(nd *Node) *nodeState {
	if r == nil {
		return nil
	}
	if o := r.state(nd.ID); o != nil && sameNode(&o.Node, nd, true) {
		return o
	}
	return nil
}

// sameNode reports whether two inventory entries are equal for the engine;
// with elections false, Offline, Created and DecidedPrimary, which only
// elections read, are not compared.
func sameNode(a, b *Node, elections bool) bool {
	if elections && (a.Offline != b.Offline || !a.Created.Equal(b.Created) || !slices.Equal(a.DecidedPrimary, b.DecidedPrimary)) {
		return false
	}
	return a.ID == b.ID && a.User == b.User && a.IPv4 == b.IPv4 && a.IPv6 == b.IPv6 &&
		slices.Equal(a.Tags, b.Tags) && slices.Equal(a.RoutableIPs, b.RoutableIPs) &&
		slices.Equal(a.ApprovedRoutes, b.ApprovedRoutes) && a.Name == b.Name
}

// sameIDs reports whether bitset a of result ra and bitset b of result rb
// hold the same node IDs.
func sameIDs(ra *Result, a bitset, rb *Result, b bitset) bool {
	var ia, ib []tailcfg.NodeID
	a.each(func(i int) { ia = append(ia, ra.nodes[i].ID) })
	b.each(func(i int) { ib = append(ib, rb.nodes[i].ID) })
	return slices.Equal(ia, ib)
}

// routeViewers returns the nodes whose views may carry subnet p through
// one of its routers: sources of rules whose destinations cover p or are
// "*" (via rules included), destinations of rules with sources behind p,
// and p's own routers, which route it through the primary.
func (r *Result) routeViewers(p netip.Prefix) bitset {
	out := newBitset(len(r.nodes))
	for _, er := range r.rules {
		if er.routesAll || er.routeSet.OverlapsPrefix(p) {
			out.or(er.srcNodes)
		}
		if er.srcOutside.OverlapsPrefix(p) {
			out.or(er.dstNodes)
		}
	}
	for _, i := range r.routers {
		if slices.Contains(r.nodes[i].subnets, p) {
			out.set(i)
		}
	}
	return out
}
