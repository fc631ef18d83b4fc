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
// resends those and keeps the others. Views r has already computed for
// unaffected nodes are carried over, so a change to one node costs the
// re-resolution of the rules plus the views of the nodes it touches — not
// every node against every rule.
func (r *Result) Update(nodes []Node) (*Result, []tailcfg.NodeID) {
	nr := r.p.Evaluate(nodes, r.opts)

	changed := map[tailcfg.NodeID]bool{}
	for _, s := range nr.nodes {
		old, ok := r.byID[s.ID]
		if !ok || !sameNode(&old.Node, &s.Node) || old.noIPv4 != s.noIPv4 {
			// Connecting and disconnecting only matters to routers (HA
			// elections); for other nodes it changes no view.
			if ok && onlyOfflineDiffers(&old.Node, &s.Node) && len(old.subnets) == 0 && len(s.subnets) == 0 && old.noIPv4 == s.noIPv4 {
				continue
			}
			changed[s.ID] = true
		}
	}
	for _, s := range r.nodes {
		if _, ok := nr.byID[s.ID]; !ok {
			changed[s.ID] = true
		}
	}
	if len(changed) == 0 {
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
				for _, p := range res.Node(id).Peers {
					affected[p.ID] = true
				}
			}
		}
	}
	for k := range r.rules {
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
	// SSH principals: rules whose sources include a changed node.
	for _, sr := range r.p.ssh {
		for _, res := range []*Result{r, nr} {
			src := newBitset(len(res.nodes))
			for _, a := range sr.srcs {
				src.or(res.nodesOf(a))
			}
			hit := false
			src.each(func(i int) { hit = hit || changed[res.nodes[i].ID] })
			if !hit {
				continue
			}
			for _, d := range sr.dsts {
				if d.kind == aliasAutogroup && d.name == agSelf {
					add(res, src)
					continue
				}
				add(res, res.nodesOf(d))
			}
			if len(sr.localparts) > 0 {
				add(res, src)
			}
		}
	}
	// A subnet changing primary router changes what every viewer of both
	// routers sees.
	for _, pfx := range primaryChanges(r, nr) {
		for _, res := range []*Result{r, nr} {
			if s, ok := res.primary[pfx]; ok {
				affected[s.ID] = true
				for _, p := range res.Node(s.ID).Peers {
					affected[p.ID] = true
				}
			}
		}
	}

	nr.adoptViews(r, affected)
	ids := make([]tailcfg.NodeID, 0, len(affected))
	for id := range affected {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return nr, ids
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

// sameNode reports whether two inventory entries are equal for the engine.
func sameNode(a, b *Node) bool {
	return a.ID == b.ID && a.User == b.User && a.IPv4 == b.IPv4 && a.IPv6 == b.IPv6 &&
		slices.Equal(a.Tags, b.Tags) && slices.Equal(a.RoutableIPs, b.RoutableIPs) &&
		slices.Equal(a.ApprovedRoutes, b.ApprovedRoutes) && a.Name == b.Name && a.Offline == b.Offline
}

// onlyOfflineDiffers reports whether a and b differ in Offline alone.
func onlyOfflineDiffers(a, b *Node) bool {
	c := *b
	c.Offline = a.Offline
	return sameNode(a, &c)
}

// sameIDs reports whether bitset a of result ra and bitset b of result rb
// hold the same node IDs.
func sameIDs(ra *Result, a bitset, rb *Result, b bitset) bool {
	var ia, ib []tailcfg.NodeID
	a.each(func(i int) { ia = append(ia, ra.nodes[i].ID) })
	b.each(func(i int) { ib = append(ib, rb.nodes[i].ID) })
	return slices.Equal(ia, ib)
}

// primaryChanges lists the subnets whose primary router differs.
func primaryChanges(r, nr *Result) []netip.Prefix {
	var out []netip.Prefix
	for pfx, s := range r.primary {
		if ns, ok := nr.primary[pfx]; !ok || ns.ID != s.ID {
			out = append(out, pfx)
		}
	}
	for pfx := range nr.primary {
		if _, ok := r.primary[pfx]; !ok {
			out = append(out, pfx)
		}
	}
	return out
}
