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
// It caches the node's view without peers (its filter, SSH policy and
// capabilities), which a session asks for after every change, so that the
// next Result can hand the same filter on when the change leaves it.
func (r *Result) PacketFilter(id tailcfg.NodeID) []tailcfg.FilterRule {
	s := r.state(id)
	if s == nil {
		return nil
	}
	return r.parts(s).PacketFilter
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
	return r.capsOf(s)
}

// SSHPolicy returns the SSH rules node id enforces, nil if it has none or
// id is unknown, without building its peer list (caching as PacketFilter
// does).
func (r *Result) SSHPolicy(id tailcfg.NodeID) *tailcfg.SSHPolicy {
	s := r.state(id)
	if s == nil {
		return nil
	}
	return r.parts(s).SSH
}

// priorView returns the previous Result's view of s when the update that
// made r kept parts of it (see Result.prior), else nil.
func (r *Result) priorView(s *nodeState) *NodeView {
	if r.prior == nil {
		return nil
	}
	return r.prior[s.idx]
}

// filterOf computes s's packet filter, or takes the prior view's when the
// update left it.
func (r *Result) filterOf(s *nodeState) []tailcfg.FilterRule {
	if p := r.priorView(s); p != nil && !r.redoFilter.has(s.idx) {
		return p.PacketFilter
	}
	return r.packetFilter(s)
}

// sshOf is filterOf for the SSH policy.
func (r *Result) sshOf(s *nodeState) *tailcfg.SSHPolicy {
	if p := r.priorView(s); p != nil && !r.redoSSH.has(s.idx) {
		return p.SSH
	}
	return r.sshPolicy(s)
}

// capsOf is filterOf for the capabilities.
func (r *Result) capsOf(s *nodeState) tailcfg.NodeCapMap {
	if p := r.priorView(s); p != nil && !r.redoCaps.has(s.idx) {
		return p.CapMap
	}
	return r.capMap(s)
}
