package policy

import "tailscale.com/tailcfg"

// PacketFilter returns node id's packet filter, or nil if id is unknown.
// Unlike Node it does not build the node's peer list, so a server checking
// many nodes' filters after a change pays per rule, not per peer.
func (r *Result) PacketFilter(id tailcfg.NodeID) []tailcfg.FilterRule {
	s, ok := r.byID[id]
	if !ok {
		return nil
	}
	if v := r.cachedView(id); v != nil {
		return v.PacketFilter
	}
	return r.packetFilter(s)
}
