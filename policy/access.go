package policy

import (
	"slices"

	"tailscale.com/tailcfg"

	"github.com/tailplane/tailplane/schema"
)

// Access is one way a node may open connections to another node's own
// tailnet addresses under one rule of the policy: what the policy
// explorer of the console shows.
type Access struct {
	From, To tailcfg.NodeID
	// Rule is the rule's field path: "acls[2]", "grants[0]", or "acls"
	// for the allow-all default of a policy without acls and grants.
	Rule string
	Pos  schema.Pos // where the rule is declared; zero when unknown
	// Ports are the ports To opens to From under the rule, in the order
	// the rule's destinations list them.
	Ports []tailcfg.PortRange
	// Protos are IP protocol numbers; nil means TCP, UDP and ICMP.
	Protos []int
}

// Access lists, rule by rule, the nodes node id may reach (out: From is
// id) and the nodes that may reach it (in: To is id), each sorted by the
// other node's ID and then by rule. It answers for the packet rules of
// acls and grants between the nodes' own addresses (the addresses the
// sources name, the destinations they open): capability grants, SSH
// rules, subnets behind routers and exit traffic are not part of it, and
// neither is a grant's via. A node that is not in the inventory (or
// reaches nothing) gets nil lists.
func (r *Result) Access(id tailcfg.NodeID) (out, in []Access) {
	s := r.state(id)
	if s == nil {
		return nil, nil
	}
	for _, o := range r.nodes {
		if o == s || o == nil {
			continue
		}
		out = append(out, r.access(s, o)...)
		in = append(in, r.access(o, s)...)
	}
	return out, in
}

// access lists the rules under which src may reach dst's addresses.
func (r *Result) access(src, dst *nodeState) []Access {
	var out []Access
	for _, er := range r.rules {
		if er.caps != nil || !r.isSource(er, src) {
			continue
		}
		var ports []tailcfg.PortRange
		selfOK := er.dstSelf && !dst.Tagged() && !src.Tagged() && src.User == dst.User
		for _, d := range er.dsts {
			if r.dstMatches(er, d.a, dst, selfOK) {
				for _, p := range d.ports {
					if !slices.Contains(ports, p) {
						ports = append(ports, p)
					}
				}
			}
		}
		if len(ports) == 0 {
			continue
		}
		out = append(out, Access{From: src.ID, To: dst.ID, Rule: er.path, Pos: r.p.src.Pos(er.path),
			Ports: ports, Protos: slices.Clone(er.protos)})
	}
	return out
}

// isSource reports whether er's sources hold one of s's own addresses.
func (r *Result) isSource(er *evalRule, s *nodeState) bool {
	if er.srcSet == nil {
		return false
	}
	for _, p := range s.addrs {
		if er.srcSet.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// dstMatches reports whether destination a of er opens dst's own
// addresses; self says whether autogroup:self applies to the pair.
func (r *Result) dstMatches(er *evalRule, a alias, dst *nodeState, self bool) bool {
	switch {
	case a.kind == aliasAutogroup && a.name == agSelf:
		return self
	case a.kind == aliasAll:
		return true
	case a.kind == aliasAutogroup && a.name == agInternet:
		return false // exit traffic, not the node's addresses
	case a.kind == aliasPrefixes:
		if er.viaNodes != nil {
			return false // routed through the via routers
		}
		for _, p := range dst.addrs {
			if a.set.Contains(p.Addr()) {
				return true
			}
		}
		return false
	}
	return r.nodesOf(a).has(dst.idx)
}
