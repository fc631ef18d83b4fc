package control

import (
	"context"
	"sync"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// Relay meshing. Replicas of one server each run an embedded relay, all
// under one region ID, and each hands its own clients a map naming only
// itself. So that two nodes homed on different replicas' relays still
// reach each other through them, the relays mesh, as Tailscale's derper
// does: they share a mesh key (DERPConfig.MeshKey), each connects to every
// other as a mesh client watching who is connected there, and a packet for
// a node connected to another relay is forwarded to it over that
// connection. The admission gate lets the other relays' keys in; the mesh
// key itself is checked by derpserver.
//
//	(*DERP).MeshSelf() MeshPeer          this relay, as the others mesh with it
//	(*DERP).SetMeshPeers(peers)          mesh with exactly these (package replica keeps it current)

// MeshPeer is one relay of the mesh.
type MeshPeer struct {
	Key  key.NodePublic   `json:"key"`  // its derpserver key
	Node tailcfg.DERPNode `json:"node"` // how to reach it, with its certificate pin
}

// derpMesh is a relay's connections to the other relays of its mesh.
type derpMesh struct {
	mu    sync.Mutex                       // guards the field below
	peers map[key.NodePublic]*meshPeerConn // by the peer relay's key
}

// meshPeerConn is one mesh client: a watch connection to a peer relay and
// the forwarders it added.
type meshPeerConn struct {
	node   tailcfg.DERPNode
	client *derphttp.Client
	cancel context.CancelFunc

	mu      sync.Mutex // guards the field below
	present map[key.NodePublic]bool
}

// has reports whether k is a relay of the mesh (admitted to connect).
func (m *derpMesh) has(k key.NodePublic) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.peers[k]
	return ok
}

// MeshSelf returns this relay as the other relays of its mesh reach it.
func (d *DERP) MeshSelf() MeshPeer {
	for _, r := range d.Map.Regions {
		return MeshPeer{Key: d.srv.PublicKey(), Node: *r.Nodes[0]}
	}
	return MeshPeer{Key: d.srv.PublicKey()}
}

// SetMeshPeers makes the relay mesh with exactly peers (itself among them
// is skipped): it connects to new ones and drops the connections and
// forwarders of those gone. Without a mesh key it does nothing.
func (d *DERP) SetMeshPeers(peers []MeshPeer) {
	if !d.srv.HasMeshKey() {
		return
	}
	want := map[key.NodePublic]MeshPeer{}
	for _, p := range peers {
		if p.Key != d.srv.PublicKey() && !p.Key.IsZero() {
			want[p.Key] = p
		}
	}
	d.mesh.mu.Lock()
	defer d.mesh.mu.Unlock()
	if d.mesh.peers == nil {
		d.mesh.peers = map[key.NodePublic]*meshPeerConn{}
	}
	for k, pc := range d.mesh.peers {
		if p, ok := want[k]; !ok || p.Node != pc.node {
			d.dropMeshPeerLocked(k, pc)
		}
	}
	for k, p := range want {
		if d.mesh.peers[k] == nil {
			d.mesh.peers[k] = d.meshWith(p)
		}
	}
}

// closeMesh drops every mesh connection (Close).
func (d *DERP) closeMesh() {
	d.mesh.mu.Lock()
	defer d.mesh.mu.Unlock()
	for k, pc := range d.mesh.peers {
		d.dropMeshPeerLocked(k, pc)
	}
}

func (d *DERP) dropMeshPeerLocked(k key.NodePublic, pc *meshPeerConn) {
	delete(d.mesh.peers, k)
	pc.cancel()
	pc.client.Close()
	pc.mu.Lock()
	for n := range pc.present {
		d.srv.RemovePacketForwarder(n, pc.client)
	}
	pc.present = nil
	pc.mu.Unlock()
}

// meshWith starts watching peer p's clients and forwarding to them.
func (d *DERP) meshWith(p MeshPeer) *meshPeerConn {
	node := p.Node
	region := &tailcfg.DERPRegion{RegionID: node.RegionID, RegionCode: "mesh", Nodes: []*tailcfg.DERPNode{&node}}
	c := derphttp.NewRegionClient(d.srv.PrivateKey(), d.logf, netmon.NewStatic(), func() *tailcfg.DERPRegion { return region })
	c.MeshKey = d.srv.MeshKey()
	c.WatchConnectionChanges = true
	ctx, cancel := context.WithCancel(context.Background())
	pc := &meshPeerConn{node: p.Node, client: c, cancel: cancel, present: map[key.NodePublic]bool{}}
	add := func(m derp.PeerPresentMessage) {
		pc.mu.Lock()
		defer pc.mu.Unlock()
		if pc.present != nil {
			pc.present[m.Key] = true
			d.srv.AddPacketForwarder(m.Key, c)
		}
	}
	remove := func(m derp.PeerGoneMessage) {
		pc.mu.Lock()
		defer pc.mu.Unlock()
		if pc.present != nil {
			delete(pc.present, m.Peer)
			d.srv.RemovePacketForwarder(m.Peer, c)
		}
	}
	go c.RunWatchConnectionLoop(ctx, d.srv.PublicKey(), d.logf, add, remove, nil)
	return pc
}
