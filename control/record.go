package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// nodeRecord is a node's durable state, typed: what the store keeps of it.
// recordFromStore and toStore are its only conversions from and to
// store.Node, at the store boundary; everything else reads these fields.
type nodeRecord struct {
	id        tailcfg.NodeID // assigned by the store when the node registers
	stableID  tailcfg.StableNodeID
	machine   key.MachinePublic
	nodeKey   key.NodePublic
	disco     key.DiscoPublic // zero until the node first polls
	givenName string          // unique MagicDNS label
	userLogin string          // owning user; empty for tagged nodes
	tags      []string        // a node with tags is owned by them, not by a user
	v4, v6    netip.Addr      // invalid: none allocated
	// hostinfo is what the node reported, without NetInfo; never nil and
	// never modified (a change replaces it). Its Hostname is the stored
	// host name.
	hostinfo  *tailcfg.Hostinfo
	authKey   string // name of the auth key it registered with
	ephemeral bool
	createdAt time.Time
	keyExpiry time.Time // zero means never
	lastSeen  time.Time // when its last session ended, or it logged out; zero means never connected
	loggedOut bool
	// pending: registered under device approval and not approved yet, so
	// unauthorized: no peers, no relay, and no peer sees it.
	pending bool
}

// recordFromStore parses a stored node. Malformed keys or hostinfo fail;
// a malformed disco key or address reads as none.
func recordFromStore(r *store.Node) (nodeRecord, error) {
	n := nodeRecord{
		id:        tailcfg.NodeID(r.ID),
		stableID:  tailcfg.StableNodeID(r.StableID),
		givenName: r.GivenName,
		userLogin: r.UserLogin,
		tags:      r.Tags,
		hostinfo:  new(tailcfg.Hostinfo),
		authKey:   r.AuthKey,
		ephemeral: r.Ephemeral,
		createdAt: r.CreatedAt,
		keyExpiry: r.KeyExpiry,
		lastSeen:  r.LastSeen,
		loggedOut: r.LoggedOut,
		pending:   r.PendingApproval,
	}
	if err := n.machine.UnmarshalText([]byte(r.MachineKey)); err != nil {
		return nodeRecord{}, fmt.Errorf("control: node %d has a malformed machine key: %w", r.ID, err)
	}
	if err := n.nodeKey.UnmarshalText([]byte(r.NodeKey)); err != nil {
		return nodeRecord{}, fmt.Errorf("control: node %d has a malformed node key: %w", r.ID, err)
	}
	if r.DiscoKey != "" {
		_ = n.disco.UnmarshalText([]byte(r.DiscoKey))
	}
	if len(r.Hostinfo) > 0 {
		if err := json.Unmarshal(r.Hostinfo, n.hostinfo); err != nil {
			return nodeRecord{}, fmt.Errorf("control: node %d has malformed hostinfo: %w", r.ID, err)
		}
	}
	n.v4, _ = netip.ParseAddr(r.IPv4)
	n.v6, _ = netip.ParseAddr(r.IPv6)
	return n, nil
}

// toStore is n as the store keeps it.
func (n *nodeRecord) toStore() *store.Node {
	hi, _ := json.Marshal(n.hostinfo) // a Hostinfo always encodes
	r := &store.Node{
		ID:         int64(n.id),
		StableID:   string(n.stableID),
		MachineKey: n.machine.String(),
		NodeKey:    n.nodeKey.String(),
		Hostname:   n.hostinfo.Hostname,
		GivenName:  n.givenName,
		UserLogin:  n.userLogin,
		Tags:       n.tags,
		Hostinfo:   hi,
		AuthKey:    n.authKey,
		Ephemeral:  n.ephemeral,
		CreatedAt:  n.createdAt,
		KeyExpiry:  n.keyExpiry,
		LastSeen:   n.lastSeen,
		LoggedOut:  n.loggedOut,

		PendingApproval: n.pending,
	}
	if !n.disco.IsZero() {
		r.DiscoKey = n.disco.String()
	}
	if n.v4.IsValid() {
		r.IPv4 = n.v4.String()
	}
	if n.v6.IsValid() {
		r.IPv6 = n.v6.String()
	}
	return r
}

// saveNode writes n's durable state to the store.
func (w *world) saveNode(ctx context.Context, n *node) error {
	return w.srv.store.SaveNode(ctx, n.toStore())
}

// saveNodeSeen writes only what n's map stream told this server (its
// Hostinfo, disco key, last seen), leaving what another replica may have
// changed in the row meanwhile (an approval, a rename) as it is.
func (w *world) saveNodeSeen(ctx context.Context, n *node) error {
	return w.srv.store.SaveNodeSeen(ctx, n.toStore())
}
