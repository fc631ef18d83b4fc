package control

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"tailscale.com/tailcfg"
)

// The node inventory operators see and the actions they take on it (the
// admin API's /api/v1/nodes, `tailplane nodes`). Every action runs on the
// owner goroutine like a node's own requests, and reaches the nodes the
// same way: the node's map stream and its peers' streams get the change at
// once.

// NodeInfo is one registered node as operators see it. Nodes and Node build
// it, in one place (nodeInfo), from the same description of the node the
// policy engine evaluates (policyNode).
type NodeInfo struct {
	ID       tailcfg.NodeID       `json:"id"`
	StableID tailcfg.StableNodeID `json:"stableID"`
	Name     string               `json:"name"`     // the MagicDNS label, unique in the tailnet
	FQDN     string               `json:"fqdn"`     // Name.domain, without the trailing dot
	Hostname string               `json:"hostname"` // as the node reported it
	// User is the owning login; empty for a tagged node, which Tags own.
	User string   `json:"user,omitempty"`
	Tags []string `json:"tags,omitempty"` // the declared ones: what the policy sees

	Addresses     []netip.Addr `json:"addresses"`
	OS            string       `json:"os,omitempty"`            // as reported: "linux", "windows", ...
	ClientVersion string       `json:"clientVersion,omitempty"` // the Tailscale client's version
	MachineKey    string       `json:"machineKey"`              // "mkey:…", public
	NodeKey       string       `json:"nodeKey"`                 // "nodekey:…", public
	AuthKey       string       `json:"authKey,omitempty"`       // name of the auth key it registered with

	Created time.Time `json:"created"`
	// LastSeen is when the node last had a map session: the time of the
	// listing while it is online; zero if it never connected.
	LastSeen time.Time `json:"lastSeen,omitzero"`
	Online   bool      `json:"online"`
	// KeyExpiry is when the node key expires; zero means never.
	KeyExpiry time.Time `json:"keyExpiry,omitzero"`
	Expired   bool      `json:"expired"`   // its key expired: it must log in again
	LoggedOut bool      `json:"loggedOut"` // kept with its addresses, hidden from peers until it logs in
	Ephemeral bool      `json:"ephemeral"`
	// PendingApproval: registered under tailnet.deviceApproval and not
	// approved yet; it has no peers and no peer sees it.
	PendingApproval bool `json:"pendingApproval"`

	AdvertisedRoutes []netip.Prefix  `json:"advertisedRoutes,omitempty"`
	ApprovedRoutes   []RouteApproval `json:"approvedRoutes,omitempty"` // those of AdvertisedRoutes the config approves, each with its rule
	PrimaryRoutes    []netip.Prefix  `json:"primaryRoutes,omitempty"`  // the subnets peers route through it now
}

// Errors of the node actions, for callers to tell apart with errors.Is.
var (
	ErrNodeNotFound = errors.New("no such node")
	ErrNotPending   = errors.New("the node is not waiting for approval")
	ErrNameTaken    = errors.New("the name is taken by another node")
	ErrInvalidName  = errors.New("not a valid MagicDNS name")
)

// Nodes lists every registered node, logged out and pending ones included,
// by ID.
func (s *Server) Nodes(ctx context.Context) ([]NodeInfo, error) {
	var out []NodeInfo
	err := s.do(ctx, func(w *world) error {
		now := w.srv.now()
		out = make([]NodeInfo, 0, len(w.nodes))
		for _, n := range w.nodes {
			out = append(out, w.nodeInfo(n, now))
		}
		return nil
	})
	slices.SortFunc(out, func(a, b NodeInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out, err
}

// Node returns the node with ID id, or an error wrapping ErrNodeNotFound.
func (s *Server) Node(ctx context.Context, id tailcfg.NodeID) (NodeInfo, error) {
	return s.nodeAction(ctx, id, func(*world, *node) error { return nil })
}

// ExpireNode expires the node's key now, as if its nodeKeyExpiry had
// passed: the node must log in again (its stream gets the expired netmap),
// and its peers see it expired and unreachable. It returns the node as it
// is afterwards.
func (s *Server) ExpireNode(ctx context.Context, id tailcfg.NodeID) (NodeInfo, error) {
	return s.nodeAction(ctx, id, func(w *world, n *node) error {
		old := n.keyExpiry
		n.keyExpiry = w.srv.now().Add(-time.Second).UTC().Truncate(time.Second) // strictly past
		if err := w.saveNode(ctx, n); err != nil {
			n.keyExpiry = old
			return err
		}
		w.srv.logf("control: node %q (%d): key expired by an admin", n.givenName, n.id)
		w.cutOffExpired(n)
		return nil
	})
}

// DeleteNode removes the node, freeing its addresses and name: its session
// ends and it leaves every peer's netmap. It returns the node as it was.
func (s *Server) DeleteNode(ctx context.Context, id tailcfg.NodeID) (NodeInfo, error) {
	return s.removeNode(ctx, id, false, "node was deleted by an admin")
}

// RejectNode removes a node that waits for approval, like DeleteNode; any
// other node is refused with ErrNotPending.
func (s *Server) RejectNode(ctx context.Context, id tailcfg.NodeID) (NodeInfo, error) {
	return s.removeNode(ctx, id, true, "device approval was rejected by an admin")
}

func (s *Server) removeNode(ctx context.Context, id tailcfg.NodeID, pendingOnly bool, why string) (NodeInfo, error) {
	var info NodeInfo
	_, err := s.nodeAction(ctx, id, func(w *world, n *node) error {
		if pendingOnly && !n.pending {
			return fmt.Errorf("node %q (%d): %w (approve or delete it instead)", n.givenName, n.id, ErrNotPending)
		}
		info = w.nodeInfo(n, w.srv.now())
		w.srv.logf("control: removing node %q (%d): %s", n.givenName, n.id, why)
		return w.leave(ctx, n, removing, why, false)
	})
	return info, err
}

// ApproveNode authorizes a node that waits for approval: its stream gets a
// netmap with MachineAuthorized and its peers at once, and they get it.
// Any other node is refused with ErrNotPending.
func (s *Server) ApproveNode(ctx context.Context, id tailcfg.NodeID) (NodeInfo, error) {
	return s.nodeAction(ctx, id, func(w *world, n *node) error {
		if !n.pending {
			return fmt.Errorf("node %q (%d): %w", n.givenName, n.id, ErrNotPending)
		}
		n.pending = false
		if err := w.saveNode(ctx, n); err != nil {
			n.pending = true
			return err
		}
		w.srv.logf("control: node %q (%d) approved", n.givenName, n.id)
		w.membershipChanged(n, false)
		if n.sess != nil {
			n.sess.enqueueFull() // MachineAuthorized and its peers, even if the policy gives it none
		}
		return nil
	})
}

// RenameNode gives the node a new MagicDNS name, which must be a DNS label
// (lowercase letters, digits and inner hyphens; ErrInvalidName) that no
// other node has (ErrNameTaken). It is saved, and peers get the new name
// at once. A re-registration keeps it.
func (s *Server) RenameNode(ctx context.Context, id tailcfg.NodeID, name string) (NodeInfo, error) {
	if name == "" || dnsLabel(name) != name {
		return NodeInfo{}, fmt.Errorf("%w: %q (hint: use lowercase letters, digits and inner hyphens, at most 63, such as %q)", ErrInvalidName, name, dnsLabel(name))
	}
	return s.nodeAction(ctx, id, func(w *world, n *node) error {
		if other := w.names[name]; other != nil && other != n {
			return fmt.Errorf("%w: %q is node %d's (hint: rename or delete that node first)", ErrNameTaken, name, other.id)
		}
		old := n.givenName
		if old == name {
			return nil
		}
		n.givenName = name
		if err := w.saveNode(ctx, n); err != nil {
			n.givenName = old
			return err
		}
		delete(w.names, old)
		w.names[name] = n
		w.srv.logf("control: node %d renamed from %q to %q", n.id, old, name)
		w.membershipChanged(n, false) // routes may be approved by name
		w.publishChanged(n)
		return nil
	})
}

// nodeAction runs f on node id on the owner goroutine and returns the node
// as it is afterwards (for a removed node, as NodeInfo's zero value).
func (s *Server) nodeAction(ctx context.Context, id tailcfg.NodeID, f func(*world, *node) error) (NodeInfo, error) {
	var info NodeInfo
	err := s.do(ctx, func(w *world) error {
		n := w.nodes[id]
		if n == nil {
			return fmt.Errorf("node %d: %w (hint: `tailplane nodes list` shows the IDs)", id, ErrNodeNotFound)
		}
		if err := f(w, n); err != nil {
			return err
		}
		if w.nodes[id] == n {
			info = w.nodeInfo(n, w.srv.now())
		}
		return nil
	})
	return info, err
}

// nodeInfo describes n as of now.
func (w *world) nodeInfo(n *node, now time.Time) NodeInfo {
	pn := w.policyNode(n, w.tailnet, w.compiled)
	_, primary := w.pol.Routes(n)
	info := NodeInfo{
		ID:               n.id,
		StableID:         n.stableID,
		Name:             n.givenName,
		FQDN:             n.givenName + "." + w.settings.Domain,
		Hostname:         n.hostinfo.Hostname,
		User:             n.userLogin,
		Tags:             pn.Tags,
		OS:               n.hostinfo.OS,
		ClientVersion:    n.hostinfo.IPNVersion,
		MachineKey:       n.machine.String(),
		NodeKey:          n.nodeKey.String(),
		AuthKey:          n.authKey,
		Created:          n.createdAt,
		LastSeen:         n.lastSeen,
		Online:           n.online,
		KeyExpiry:        n.keyExpiry,
		Expired:          w.keyExpired(n, now),
		LoggedOut:        n.loggedOut,
		Ephemeral:        n.ephemeral,
		PendingApproval:  n.pending,
		AdvertisedRoutes: n.hostinfo.RoutableIPs,
		ApprovedRoutes:   routeApprovals(n, pn, w.tailnet, w.compiled),
	}
	if w.visible(n) {
		info.PrimaryRoutes = primary
	}
	if n.online {
		info.LastSeen = now.UTC().Truncate(time.Second)
	}
	for _, a := range []netip.Addr{n.v4, n.v6} {
		if a.IsValid() {
			info.Addresses = append(info.Addresses, a)
		}
	}
	return info
}
