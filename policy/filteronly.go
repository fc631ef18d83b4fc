package policy

import (
	"net/netip"
	"slices"

	"tailscale.com/tailcfg"
)

// The functions in this file answer one part of a node's view without
// building its peer list, so a server refreshing many nodes after a change
// pays per rule, not per peer. Each returns what Node(id) would hold.

// PacketFilter returns node id's packet filter, or nil if id is unknown.
func (r *Result) PacketFilter(id tailcfg.NodeID) []tailcfg.FilterRule {
	s := r.state(id)
	if s == nil {
		return nil
	}
	if v := r.cachedView(s); v != nil {
		return v.PacketFilter
	}
	return r.packetFilter(s)
}

// SelfRoutes returns what peers route to node id (its view's AllowedIPs:
// its addresses, approved subnets and exit routes) and the subnets it is
// the primary router for. Both are nil if id is unknown.
func (r *Result) SelfRoutes(id tailcfg.NodeID) (allowed, primary []netip.Prefix) {
	s := r.state(id)
	if s == nil {
		return nil, nil
	}
	if v := r.cachedView(s); v != nil {
		return v.AllowedIPs, v.PrimaryRoutes
	}
	return s.allowedIPs(), slices.Clone(r.primaries[s.ID])
}

// CapMap returns node id's capabilities, or nil if id is unknown.
func (r *Result) CapMap(id tailcfg.NodeID) tailcfg.NodeCapMap {
	s := r.state(id)
	if s == nil {
		return nil
	}
	if v := r.cachedView(s); v != nil {
		return v.CapMap
	}
	return r.capMap(s)
}

// SSHPolicy returns the SSH rules node id enforces, nil if it has none or
// id is unknown, without building its peer list.
func (r *Result) SSHPolicy(id tailcfg.NodeID) *tailcfg.SSHPolicy {
	s := r.state(id)
	if s == nil {
		return nil
	}
	if v := r.cachedView(s); v != nil {
		return v.SSH
	}
	return r.sshPolicy(s)
}
