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
// resends those and keeps the others. Only the rules whose aliases can
// match a changed node (before or after the change) are resolved again;
// the others, and the views r has already computed for unaffected nodes,
// are carried over. A change to one node thus costs the indexing of the
// inventory, the rules that name it and the views of the nodes it
// touches — not every node against every rule.
//
// The primary-router elections continue from r's (see PrimaryKey):
// Update(nodes) elects as Evaluate(nodes, Options{Primaries:
// r.Primaries()}) would. A node that only goes offline or online
// (Node.Offline) changes nothing but elections: it affects the routers
// whose election moves and the nodes that see them and may use the subnet.
func (r *Result) Update(nodes []Node) (*Result, []tailcfg.NodeID) {
	nr := r.p.index(nodes, r.opts, r)
	prev := r.Primaries()
	nr.electSubnets(prev)

	changed := changedNodes(r, nr)
	// Rules no changed node can match resolve as before: take them over.
	carried := make([]bool, len(r.p.rules))
	move := newRemap(r, nr)
	nr.resolveRules(func(k int) *evalRule {
		if r.ruleTouched(nr, r.rules[k].rule, changed) {
			return nil
		}
		carried[k] = true
		return move.rule(r.rules[k])
	})
	nr.electVia(prev)
	elections := electionChanges(r, nr)
	if len(changed) == 0 && len(elections) == 0 {
		nr.adoptViews(r, nil)
		return nr, nil
	}

	affected := map[tailcfg.NodeID]bool{}
	add := func(res *Result, b bitset) {
		b.each(func(i int) { affected[res.nodes[i].ID] = true })
	}
	for id := range changed {
		affected[id] = true
		// Whoever saw the node, or sees it now, gets a new peer entry.
		for _, res := range []*Result{r, nr} {
			if res.byID[id] != nil {
				res.Node(id).Peers.Each(func(p tailcfg.NodeID) { affected[p] = true })
			}
		}
	}
	for k := range r.rules {
		if carried[k] {
			continue // the same nodes on both sides
		}
		o, n := r.rules[k], nr.rules[k]
		srcChanged := !slices.Equal(o.srcIPs, n.srcIPs) || !sameIDs(r, o.srcNodes, nr, n.srcNodes)
		dstChanged := !sameIDs(r, o.dstNodes, nr, n.dstNodes)
		if srcChanged {
			// The destinations' filters and peer lists change; other
			// sources are unaffected (their peers are the destinations).
			add(r, o.dstNodes)
			add(nr, n.dstNodes)
			if n.dstSelf {
				for id := range changed {
					for _, res := range []*Result{r, nr} {
						if s := res.byID[id]; s != nil {
							add(res, res.sameUser(s))
						}
					}
				}
			}
		}
		if dstChanged {
			// Every source gains or loses a peer.
			add(r, o.srcNodes)
			add(nr, n.srcNodes)
		}
	}
	// SSH rules whose principals or recorders include a changed node.
	for _, sr := range r.p.ssh {
		for _, res := range []*Result{r, nr} {
			res.sshAffected(sr, changed, add)
		}
	}
	electionsAffected(r, nr, elections, affected)

	nr.adoptViews(r, affected)
	ids := make([]tailcfg.NodeID, 0, len(affected))
	for id := range affected {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return nr, ids
}

// changedNodes returns the IDs of the nodes added, removed or changed
// between r and nr. Connecting, disconnecting and the registration time
// only matter to elections (electionsAffected), so they do not count.
func changedNodes(r, nr *Result) map[tailcfg.NodeID]bool {
	changed := map[tailcfg.NodeID]bool{}
	for _, s := range nr.nodes {
		old, ok := r.byID[s.ID]
		if !ok || !sameNode(&old.Node, &s.Node, false) || old.noIPv4 != s.noIPv4 {
			changed[s.ID] = true
		}
	}
	for _, s := range r.nodes {
		if _, ok := nr.byID[s.ID]; !ok {
			changed[s.ID] = true
		}
	}
	return changed
}

// electionsAffected adds to affected the views an election moving a
// subnet to another router changes: both routers' and those of the nodes
// that see either and may carry the subnet.
func electionsAffected(r, nr *Result, elections []PrimaryKey, affected map[tailcfg.NodeID]bool) {
	for _, k := range elections {
		for _, res := range []*Result{r, nr} {
			s, ok := res.elected[k]
			if !ok {
				continue
			}
			affected[s.ID] = true
			viewers := res.routeViewers(k.Prefix)
			res.Node(s.ID).Peers.Each(func(p tailcfg.NodeID) {
				if viewers.has(res.byID[p].idx) {
					affected[p] = true
				}
			})
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
		s := r.byID[id]
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

// adoptViews copies r's cached views of nodes not in affected into nr.
func (nr *Result) adoptViews(r *Result, affected map[tailcfg.NodeID]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	nr.mu.Lock()
	defer nr.mu.Unlock()
	for id, v := range r.views {
		if _, ok := nr.byID[id]; ok && !affected[id] {
			if _, done := nr.views[id]; !done {
				nr.views[id] = v
			}
		}
	}
}

// unchanged returns r's state of nd when r is not nil and holds nd as is.
func (r *Result) unchanged(nd *Node) *nodeState {
	if r == nil {
		return nil
	}
	if o := r.byID[nd.ID]; o != nil && sameNode(&o.Node, nd, true) {
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
