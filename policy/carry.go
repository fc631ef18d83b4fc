package policy

import (
	"strings"

	"tailscale.com/tailcfg"
)

// ruleTouched reports whether changing the nodes in changed can change how
// rule rl resolves: whether one of its sources, destinations or via
// routers can match a changed node as r (before) or nr (after) sees it.
// It errs on the side of true for address aliases.
func (r *Result) ruleTouched(nr *Result, rl *rule, changed map[tailcfg.NodeID]bool) bool {
	for id := range changed {
		for _, res := range []*Result{r, nr} {
			s := res.state(id)
			if s == nil {
				continue
			}
			for _, a := range rl.srcs {
				if res.p.mayMatch(a, s, false) {
					return true
				}
			}
			for _, d := range rl.dsts {
				if res.p.mayMatch(d.a, s, true) {
					return true
				}
			}
			for _, a := range rl.via {
				if res.p.mayMatch(a, s, true) {
					return true
				}
			}
		}
	}
	return false
}

// mayMatch reports whether alias a can stand for node s in a rule: for
// identity aliases exactly what nodesOf(a).has(s) says, computed from s
// alone; for addresses whether they overlap the node's addresses or
// approved subnets, or, as a destination, whether s is an exit node.
// autogroup:self is resolved per view, never in the rule.
func (p *Policy) mayMatch(a alias, s *nodeState, dst bool) bool {
	tagged := s.Tagged()
	switch a.kind {
	case aliasAll:
		return true
	case aliasPrefixes:
		return overlapsAny(a.set, s.addrs) || overlapsAny(a.set, s.subnets) || (dst && s.isExitNode())
	case aliasUser:
		return !tagged && s.User == a.name
	case aliasDomain:
		_, d, ok := strings.Cut(s.User, "@")
		return !tagged && ok && d == a.name
	case aliasGroup:
		if tagged {
			return false
		}
		for _, u := range p.sy.groups[a.name] {
			if u == s.User {
				return true
			}
		}
		return false
	case aliasTag:
		if !tagged {
			return false
		}
		for _, t := range s.Tags {
			if t == a.name {
				return true
			}
		}
		return false
	case aliasAutogroup:
		switch a.name {
		case agMember:
			return !tagged
		case agTagged:
			return tagged
		case agDangerAll:
			return true
		case agAdmin, agOwner:
			u, ok := p.users[s.User]
			return !tagged && ok && inRoleGroup(u, a.name)
		case agInternet:
			return s.isExitNode()
		}
	}
	return false
}

// remap moves node bitsets from one Result's node positions to another's.
type remap struct {
	n     int   // nodes in the target
	ident bool  // every source node keeps its position
	to    []int // source position -> target position, -1 when removed; nil when ident
	done  map[*uint64]bitset
}

func newRemap(from, to *Result) *remap {
	m := &remap{n: len(to.nodes), ident: len(to.nodes) >= len(from.nodes), done: map[*uint64]bitset{}}
	for i, s := range from.nodes {
		if m.ident && (s == nil || to.nodes[i] == nil || to.nodes[i].ID != s.ID) {
			m.ident = false
		}
	}
	if !m.ident {
		m.to = make([]int, len(from.nodes))
		for i, s := range from.nodes {
			m.to[i] = -1
			if s == nil {
				continue
			}
			if t := to.state(s.ID); t != nil {
				m.to[i] = t.idx
			}
		}
	}
	return m
}

// bits returns b over the target's positions; nil stays nil. Bitsets are
// read-only, so an unmoved one of the right size is shared, and one shared
// by several rules is moved once.
func (m *remap) bits(b bitset) bitset {
	if b == nil {
		return nil
	}
	if m.ident && len(b) == (m.n+63)/64 {
		return b
	}
	if len(b) == 0 {
		return newBitset(m.n)
	}
	if out, ok := m.done[&b[0]]; ok {
		return out
	}
	out := newBitset(m.n)
	if m.ident {
		copy(out, b)
	} else {
		b.each(func(i int) {
			if j := m.to[i]; j >= 0 {
				out.set(j)
			}
		})
	}
	m.done[&b[0]] = out
	return out
}

// rule returns er over the target's positions.
func (m *remap) rule(er *evalRule) *evalRule {
	c := *er
	c.srcNodes, c.dstNodes, c.viaNodes = m.bits(er.srcNodes), m.bits(er.dstNodes), m.bits(er.viaNodes)
	return &c
}
