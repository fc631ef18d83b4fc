package policy

import (
	"maps"
	"net/netip"
	"slices"

	"tailscale.com/tailcfg"

	"github.com/tailplane/tailplane/schema"
)

// Node attributes with meaning to the engine.
const (
	attrDisableIPv4 = "disable-ipv4"          // strip the node's IPv4 address, and IPv4 addresses from its view
	attrFunnel      = "funnel"                // may serve Tailscale Funnel
	attrRandomPort  = "randomize-client-port" // the top-level randomizeClientPort setting
)

// funnelCaps are granted along with the funnel attribute: the ports
// Funnel serves and the warning clients show without HTTPS certificates.
var funnelCaps = []tailcfg.NodeCapability{
	"https://tailscale.com/cap/funnel-ports?ports=443,8443,10000",
	"https://tailscale.com/cap/warn-funnel-no-https",
}

// baseCaps returns the capabilities every node gets regardless of
// nodeAttrs: from the tailnet settings, Tailscale SSH (tailscaled refuses
// `up --ssh` without it) and Taildrop (tailscaled sends and accepts files
// only with it, on both ends); and randomize-client-port from the
// top-level randomizeClientPort. Nil when none.
func baseCaps(s schema.Settings, randomizeClientPort bool) tailcfg.NodeCapMap {
	out := tailcfg.NodeCapMap{}
	if s.SSH {
		out[tailcfg.CapabilitySSH] = nil
	}
	if s.FileSharing {
		out[tailcfg.CapabilityFileSharing] = nil
	}
	if randomizeClientPort {
		out[attrRandomPort] = nil
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// capMap merges the base capabilities and the nodeAttrs that target node
// s. A node no nodeAttrs target shares the base map with every other such
// node: like all of a view, it is read-only.
func (r *Result) capMap(s *nodeState) tailcfg.NodeCapMap {
	out, own := r.p.baseCaps, false
	for _, na := range r.p.nodeAttrs {
		if !r.targets(na.targets, s) {
			continue
		}
		if !own {
			out, own = maps.Clone(out), true
			if out == nil {
				out = tailcfg.NodeCapMap{}
			}
		}
		for k, v := range na.caps {
			out[k] = append(out[k], v...)
			if k == attrFunnel {
				for _, fc := range funnelCaps {
					out[fc] = nil
				}
			}
		}
	}
	return out
}

// hasAttr reports whether nodeAttrs give node s the attribute attr.
func (r *Result) hasAttr(s *nodeState, attr tailcfg.NodeCapability) bool {
	for _, na := range r.p.nodeAttrs {
		if _, ok := na.caps[attr]; ok && r.targets(na.targets, s) {
			return true
		}
	}
	return false
}

// targets reports whether any alias names node s: by identity, or by
// address for address aliases.
func (r *Result) targets(as []alias, s *nodeState) bool {
	for _, a := range as {
		if a.kind == aliasPrefixes {
			if overlapsAny(a.set, s.addrs) {
				return true
			}
			continue
		}
		if a.kind == aliasAutogroup && a.name == agSelf {
			continue
		}
		if r.nodesOf(a).has(s.idx) {
			return true
		}
	}
	return false
}

// ApproveRoutes returns the routes of n.RoutableIPs that autoApprovers
// approve: a subnet route is approved when an approver of a prefix that
// contains it owns the node; 0.0.0.0/0 and ::/0 are approved by the
// exitNode approvers only. The nodes of the
// inventory are not needed: approvers are judged on n alone.
func (p *Policy) ApproveRoutes(n Node) []netip.Prefix {
	var out []netip.Prefix
	for _, route := range n.RoutableIPs {
		if p.RouteApprover(n, route) != "" {
			out = append(out, route)
		}
	}
	return out
}

// RouteApprover returns the field path of the autoApprovers entry that
// approves route for n, as ApproveRoutes judges it
// (`autoApprovers.routes["10.0.0.0/8"]`, `autoApprovers.exitNode`), or ""
// when none does.
func (p *Policy) RouteApprover(n Node, route netip.Prefix) string {
	if isExitRoute(route) {
		// Only autoApprovers.exitNode approves exit routes; a routes entry
		// for 0.0.0.0/0 does not.
		if slices.ContainsFunc(p.autoExit, func(a alias) bool { return p.owns(a, n) }) {
			return "autoApprovers.exitNode"
		}
		return ""
	}
	for _, ar := range p.autoRoute {
		if ar.prefix.Bits() > route.Bits() || !ar.prefix.Contains(route.Addr()) || ar.prefix.Addr().Is4() != route.Addr().Is4() {
			continue
		}
		if slices.ContainsFunc(ar.approvers, func(a alias) bool { return p.owns(a, n) }) {
			return ar.path
		}
	}
	return ""
}

// owns reports whether approver a stands for node n: a tag n carries, or
// the user (or a group or autogroup of the user) owning an untagged n.
func (p *Policy) owns(a alias, n Node) bool {
	switch a.kind {
	case aliasTag:
		return slices.Contains(n.Tags, a.name)
	case aliasUser:
		return !n.Tagged() && n.User == a.name
	case aliasGroup:
		return !n.Tagged() && slices.Contains(p.sy.groups[a.name], n.User)
	case aliasAutogroup:
		switch a.name {
		case agTagged:
			return n.Tagged()
		case agMember:
			return !n.Tagged()
		case agAdmin, agOwner:
			u, ok := p.users[n.User]
			return !n.Tagged() && ok && inRoleGroup(u, a.name)
		}
	}
	return false
}
