package policy

import (
	"net/netip"
	"slices"
	"time"

	"go4.org/netipx"
	"tailscale.com/tailcfg"
)

// Node is what the engine needs to know about one node of the inventory.
type Node struct {
	ID   tailcfg.NodeID // unique
	Name string         // the node's host name, for messages
	User string         // owning login; "" for a tagged node
	Tags []string       // "tag:x"; a node with tags is owned by its tags, not by User

	IPv4, IPv6 netip.Addr // the node's tailnet addresses; either may be invalid

	// RoutableIPs are the routes the node advertises, including 0.0.0.0/0
	// and ::/0 for an exit node.
	RoutableIPs []netip.Prefix
	// ApprovedRoutes are the advertised routes an admin or autoApprovers
	// approved (see Policy.ApproveRoutes). Only routes both advertised and
	// approved are used.
	ApprovedRoutes []netip.Prefix

	// Offline marks a node that is not connected, or not healthy enough
	// to route for others. It only matters to primary-router elections
	// (see PrimaryKey): an offline primary hands its subnets to an online
	// router. The zero value means online.
	Offline bool

	// DecidedPrimary names the elections (see PrimaryKey) another server
	// decided this router wins: of several replicas one decides, and the
	// others install its outcome. Such an election elects this router
	// while it is one of its candidates, whatever Offline says and whoever
	// was primary; an election no candidate's DecidedPrimary names is held
	// as usual. Empty (the zero value) for a server that decides itself.
	DecidedPrimary []PrimaryKey

	// Created is when the node registered: of several routers of a
	// subnet, a fresh election picks the online one registered first
	// (ties: the lower ID). The zero time sorts before every other.
	Created time.Time
}

// Tagged reports whether the node is owned by tags rather than a user.
func (n *Node) Tagged() bool { return len(n.Tags) > 0 }

// Addrs returns the node's own addresses as single-address prefixes.
func (n *Node) Addrs() []netip.Prefix {
	var out []netip.Prefix
	for _, a := range []netip.Addr{n.IPv4, n.IPv6} {
		if a.IsValid() {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// exitRoutes are the two routes that make a node an exit node.
var (
	exitV4 = netip.MustParsePrefix("0.0.0.0/0")
	exitV6 = netip.MustParsePrefix("::/0")
)

func isExitRoute(p netip.Prefix) bool { return p.Bits() == 0 }

// nodeState is a Node plus what Evaluate derives from it once. It is
// immutable once its Result is built, and shared by the Results derived
// from that one while the node is unchanged: what depends on other nodes
// (elections, peers) lives in the Result.
type nodeState struct {
	Node
	idx     int // position in Result.nodes
	addrs   []netip.Prefix
	addrSet *netipx.IPSet
	subnets []netip.Prefix // approved non-exit routes
	exit    []netip.Prefix // approved exit routes (0.0.0.0/0, ::/0)
	noIPv4  bool           // nodeAttrs disable IPv4: peers and the node itself use IPv6 only
	// peerAddrs are the addresses peers route to the node (visibleAddrs),
	// shared by every Peer entry for it.
	peerAddrs []netip.Prefix
	// reach is everything the node can receive traffic for: its addresses,
	// approved subnets and approved exit routes.
	reach *netipx.IPSet
}

func newNodeState(n Node, idx int) *nodeState {
	s := &nodeState{Node: n, idx: idx, addrs: n.Addrs()}
	var ab, rb netipx.IPSetBuilder
	for _, p := range s.addrs {
		ab.AddPrefix(p)
		rb.AddPrefix(p)
	}
	for _, r := range n.ApprovedRoutes {
		if !slices.Contains(n.RoutableIPs, r) {
			continue
		}
		if isExitRoute(r) {
			s.exit = append(s.exit, r)
		} else {
			s.subnets = append(s.subnets, r)
		}
		rb.AddPrefix(r)
	}
	s.addrSet, _ = ab.IPSet()
	s.reach, _ = rb.IPSet()
	return s
}

// visibleAddrs are the node's addresses as peers see them.
func (s *nodeState) visibleAddrs() []netip.Prefix {
	if !s.noIPv4 {
		return s.addrs
	}
	return slices.DeleteFunc(slices.Clone(s.addrs), func(p netip.Prefix) bool { return p.Addr().Is4() })
}

// allowedIPs is what peers route to the node: its visible addresses, its
// approved subnets and its exit routes.
func (s *nodeState) allowedIPs() []netip.Prefix {
	return slices.Concat(s.visibleAddrs(), s.subnets, s.exit)
}

// isExitNode reports whether the node has an approved exit route.
func (s *nodeState) isExitNode() bool { return len(s.exit) > 0 }

// routes reports whether the node has approved subnet or exit routes.
func (s *nodeState) routes() bool { return len(s.subnets) > 0 || len(s.exit) > 0 }

// subnetsOrNil returns the node's approved subnets; nil for a nil state.
func (s *nodeState) subnetsOrNil() []netip.Prefix {
	if s == nil {
		return nil
	}
	return s.subnets
}
