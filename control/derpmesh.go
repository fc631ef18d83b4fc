package control

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// Relay mesh. Several replicas each run an embedded relay, and the DERP map
// lists them all as nodes of one region. A client connects to the first
// node it can reach (its own replica's relay, listed first), so two nodes
// of one region may sit on different relays. The relays therefore mesh, as
// Tailscale's derper does: each relay holds a client connection to every
// other one, authenticated by the region's shared mesh key; over it the
// other relay reports its clients as they come and go, and this relay
// registers that connection as the packet forwarder for them. A packet for
// a key that is not connected here goes to the relay that has it.
//
// Admission (derpgate.go) lets a mesh peer in by its mesh key: its node key
// is the other relay's own key, never a tailnet node's. The key is in the
// sealed part of the client's first frame, which the relay opens with its
// private key, as derpserver does after it.

// errMeshKey is the refusal of a relay client offering the wrong mesh key.
var errMeshKey = errors.New("it offers a relay mesh key, but not this region's: give every relay of the region the same key (--derp-mesh-key-file)")

// admitMeshPeer reports whether the client whose first frame br holds,
// under node key k, presents this relay's mesh key; an error refuses a
// client presenting another key. It reads nothing: derpserver reads the
// frame again.
func (d *DERP) admitMeshPeer(br *bufio.Reader, k key.NodePublic) (bool, error) {
	hdr, err := br.Peek(derp.FrameHeaderLen)
	if err != nil {
		return false, err
	}
	n := derp.FrameHeaderLen + int(binary.BigEndian.Uint32(hdr[1:]))
	if n > br.Size() || n < derp.FrameHeaderLen+derp.KeyLen+derp.NonceLen {
		return false, nil // no client info a relay of ours sends
	}
	frame, err := br.Peek(n)
	if err != nil {
		return false, err
	}
	msg, ok := d.srv.PrivateKey().OpenFrom(k, frame[derp.FrameHeaderLen+derp.KeyLen:])
	if !ok {
		return false, nil
	}
	var info derp.ClientInfo
	if json.Unmarshal(msg, &info) != nil || info.MeshKey.IsZero() {
		return false, nil
	}
	if !d.srv.MeshKey().Equal(info.MeshKey) {
		return false, fmt.Errorf("relay refuses relay client %s: %w", k.ShortString(), errMeshKey)
	}
	return true, nil
}

// DERPMesh keeps the embedded relay meshed with the other relays of its
// region: a mesh connection to every peer, reconnected while the peer is
// away, and this relay forwarding packets for the peer's clients over it.
// Start it with DERP.StartMesh; SetPeers changes the peers; Close ends it.
type DERPMesh struct {
	d    *DERP
	logf func(format string, args ...any)

	mu     sync.Mutex           // guards the fields below
	peers  map[string]*meshConn // by meshPeerID
	closed bool
}

// meshConn is the mesh connection to one peer relay.
type meshConn struct {
	c      *derphttp.Client
	cancel context.CancelFunc
	done   chan struct{} // closed when its watch loop returned
}

// StartMesh meshes the relay with peers, the other relays of its region as
// DERP map nodes (HostName, DERPPort, optionally IPv4/IPv6 and CertName;
// their RegionID and Name are ignored). The relay itself may be among them
// (so every replica can be given one list): it is skipped. It needs the
// relay's DERPConfig.MeshKey, which every relay of the region must share.
// The mesh outlives ctx (like the relay): Close ends it.
func (d *DERP) StartMesh(ctx context.Context, peers []*tailcfg.DERPNode) (*DERPMesh, error) {
	if !d.srv.HasMeshKey() {
		return nil, errors.New("control: the relay has no mesh key (DERPConfig.MeshKey, --derp-mesh-key-file), so it cannot mesh with other relays")
	}
	m := &DERPMesh{d: d, logf: d.logf, peers: map[string]*meshConn{}}
	m.SetPeers(peers)
	return m, nil
}

// meshPeerID identifies a peer relay by where it is and how it is pinned.
func meshPeerID(n *tailcfg.DERPNode) string {
	return fmt.Sprintf("%s|%s|%s|%d|%s", n.HostName, n.IPv4, n.IPv6, n.DERPPort, n.CertName)
}

// isSelf reports whether n is this relay's own node.
func (d *DERP) isSelf(n *tailcfg.DERPNode) bool {
	return n.HostName == d.node.HostName && derpPort(n) == derpPort(d.node)
}

// derpPort is the TLS port clients dial for n (0 in the map means 443).
func derpPort(n *tailcfg.DERPNode) int {
	if n.DERPPort == 0 {
		return 443
	}
	return n.DERPPort
}

// SetPeers replaces the peer relays: connections to relays no longer among
// them end (and their forwarding with them), new ones start.
func (m *DERPMesh) SetPeers(peers []*tailcfg.DERPNode) {
	want := map[string]*tailcfg.DERPNode{}
	for _, n := range peers {
		if !m.d.isSelf(n) {
			want[meshPeerID(n)] = n
		}
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	var gone []*meshConn
	for id, mc := range m.peers {
		if want[id] == nil {
			gone = append(gone, mc)
			delete(m.peers, id)
		}
	}
	for id, n := range want {
		if m.peers[id] == nil {
			m.peers[id] = m.dial(n)
		}
	}
	m.mu.Unlock()
	for _, mc := range gone {
		mc.stop()
	}
}

// dial starts the mesh connection to peer n.
func (m *DERPMesh) dial(n *tailcfg.DERPNode) *meshConn {
	d := m.d
	node := *n
	node.RegionID, node.Name = d.node.RegionID, "mesh"
	region := &tailcfg.DERPRegion{RegionID: node.RegionID, Nodes: []*tailcfg.DERPNode{&node}}
	addr := net.JoinHostPort(node.HostName, strconv.Itoa(derpPort(&node)))
	logf := func(format string, args ...any) {
		m.logf("derp mesh with %s: "+format, append([]any{addr}, args...)...)
	}
	c := derphttp.NewRegionClient(d.srv.PrivateKey(), logf, netmon.NewStatic(), func() *tailcfg.DERPRegion { return region })
	c.MeshKey = d.srv.MeshKey()
	c.WatchConnectionChanges = true
	ctx, cancel := context.WithCancel(context.Background())
	mc := &meshConn{c: c, cancel: cancel, done: make(chan struct{})}
	add := func(p derp.PeerPresentMessage) { d.srv.AddPacketForwarder(p.Key, c) }
	remove := func(p derp.PeerGoneMessage) { d.srv.RemovePacketForwarder(p.Peer, c) }
	logf("dialing the relay (again every 5 s while it is away)")
	go func() {
		defer close(mc.done)
		c.RunWatchConnectionLoop(ctx, d.srv.PublicKey(), logf, add, remove, nil)
	}()
	return mc
}

// stop ends the mesh connection and waits for its loop, which removes its
// forwarders as the connection breaks.
func (mc *meshConn) stop() {
	mc.cancel()
	mc.c.Close()
	<-mc.done
}

// Close ends every mesh connection and waits for them. It is safe to call
// more than once.
func (m *DERPMesh) Close() error {
	m.mu.Lock()
	m.closed = true
	peers := m.peers
	m.peers = nil
	m.mu.Unlock()
	for _, mc := range peers {
		mc.stop()
	}
	return nil
}

// MapWithPeers is the relay's DERP map with peers (the mesh peers, as for
// StartMesh) added to its region after the relay's own node, which clients
// of this replica therefore try first. Each node is named by its address.
// d.Map is not modified.
func (d *DERP) MapWithPeers(peers []*tailcfg.DERPNode) *tailcfg.DERPMap {
	self := *d.node
	nodes := []*tailcfg.DERPNode{&self}
	seen := map[string]bool{meshPeerID(&self): true}
	for _, p := range peers {
		if d.isSelf(p) || seen[meshPeerID(p)] {
			continue
		}
		seen[meshPeerID(p)] = true
		n := *p
		n.RegionID = self.RegionID
		if n.STUNPort == 0 {
			n.STUNPort = -1 // a peer's STUN port is not known: clients STUN with their own replica's relay
		}
		nodes = append(nodes, &n)
	}
	if len(nodes) > 1 {
		for _, n := range nodes {
			n.Name = fmt.Sprintf("%d-%s", n.RegionID, net.JoinHostPort(n.HostName, strconv.Itoa(derpPort(n))))
		}
	}
	region := *d.Map.Regions[self.RegionID]
	region.Nodes = nodes
	return &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{self.RegionID: &region}}
}

// ParseMeshPeer parses a peer relay given as "https://HOST[:PORT]", the
// relay's TLS address (443 when PORT is left out), optionally followed by
// "#sha256-raw:HEX", the SHA-256 of its self-signed certificate (the
// CertName its own DERP map gives; without one, its certificate must be
// valid for HOST under the system's roots).
func ParseMeshPeer(s string) (*tailcfg.DERPNode, error) {
	hint := `; want https://HOST[:PORT][#sha256-raw:HEX], e.g. https://10.0.0.2:8443`
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("relay mesh peer %q is not a URL (%v)%s", s, err, hint)
	}
	switch {
	case u.Scheme != "https":
		return nil, fmt.Errorf("relay mesh peer %q: the scheme must be https (relays speak only TLS)%s", s, hint)
	case u.Hostname() == "":
		return nil, fmt.Errorf("relay mesh peer %q has no host%s", s, hint)
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || (u.Path != "" && u.Path != "/" && u.Path != "/derp"):
		return nil, fmt.Errorf("relay mesh peer %q: only a host, a port and a certificate pin are allowed%s", s, hint)
	}
	n := &tailcfg.DERPNode{HostName: u.Hostname(), DERPPort: 443}
	if p := u.Port(); p != "" {
		port, err := strconv.ParseUint(p, 10, 16)
		if err != nil || port == 0 {
			return nil, fmt.Errorf("relay mesh peer %q: port %q is not a TCP port%s", s, p, hint)
		}
		n.DERPPort = int(port)
	}
	if ip, err := netip.ParseAddr(n.HostName); err == nil {
		if ip.Is4() {
			n.IPv4, n.IPv6 = ip.String(), "none"
		} else {
			n.IPv6, n.IPv4 = ip.String(), "none"
		}
		n.HostName = ip.String()
	}
	if u.Fragment != "" {
		sum, ok := strings.CutPrefix(u.Fragment, "sha256-raw:")
		if !ok || len(sum) != 64 || strings.Trim(strings.ToLower(sum), "0123456789abcdef") != "" {
			return nil, fmt.Errorf("relay mesh peer %q: the pin %q is not sha256-raw: and 64 hex digits (the CertName in that relay's DERP map)%s", s, u.Fragment, hint)
		}
		n.CertName = "sha256-raw:" + strings.ToLower(sum)
	}
	return n, nil
}
