package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/internal/testkit"
)

// newMeshKey is a fresh relay mesh key, as `openssl rand -hex 32` makes.
func newMeshKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// meshRelay is one replica's embedded relay in a mesh test.
type meshRelay struct {
	d    *DERP
	mesh *DERPMesh
	log  *testkit.LogBuffer
}

// startMeshRelay starts a relay on listen ("" for a random port) with its
// certificate in dir, admitting ts's nodes as ts's own relay does, and
// meshes it with peers under meshKey. Close stops it; cleanup does too.
func startMeshRelay(t *testing.T, ts *testServer, listen, dir, meshKey string, peers ...*tailcfg.DERPNode) *meshRelay {
	t.Helper()
	r := &meshRelay{log: new(testkit.LogBuffer)}
	logf := func(format string, args ...any) { r.log.Logf(format, args...); t.Logf(format, args...) }
	d, err := StartDERP(context.Background(), DERPConfig{Listen: listen, StateDir: dir, STUNListen: "off", MeshKey: meshKey, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	d.setAdmission(ts.relay.check)
	r.d = d
	if r.mesh, err = d.StartMesh(context.Background(), peers); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func (r *meshRelay) Close() {
	r.mesh.Close()
	r.d.Close()
}

// node is the relay's own node in its DERP map.
func (r *meshRelay) node() *tailcfg.DERPNode { return r.d.Map.Regions[900].Nodes[0] }

// packetReader reads the packets a relay client receives.
type packetReader struct {
	c       *derphttp.Client
	packets chan derp.ReceivedPacket
}

// connectTo is a relay client of r speaking as k, reading its packets from
// the start (the relay greets it first, which tells the test it is in).
func connectTo(t *testing.T, r *meshRelay, k key.NodePrivate) *packetReader {
	t.Helper()
	region := &tailcfg.DERPRegion{RegionID: 900, Nodes: []*tailcfg.DERPNode{r.node()}}
	c := derphttp.NewRegionClient(k, t.Logf, netmon.NewStatic(), func() *tailcfg.DERPRegion { return region })
	t.Cleanup(func() { c.Close() })
	if m, err := recv(t, c); err != nil {
		t.Fatalf("relay %s refused node %s: %v", r.node().Name, k.Public().ShortString(), err)
	} else if _, ok := m.(derp.ServerInfoMessage); !ok {
		t.Fatalf("relay's first message is %T, want its server info", m)
	}
	p := &packetReader{c: c, packets: make(chan derp.ReceivedPacket, 64)}
	go func() {
		for {
			m, err := c.Recv()
			if err != nil {
				return
			}
			if pkt, ok := m.(derp.ReceivedPacket); ok {
				p.packets <- pkt
			}
		}
	}()
	return p
}

// relayed waits until a packet from `from` reaches to, sending one every
// 200 ms: until the mesh learned of to's connection, the sender's relay
// drops them. Copies of an earlier call's packet are passed over.
func relayed(t *testing.T, ctx context.Context, from, to *packetReader, what string) {
	t.Helper()
	payload := "hello via " + what
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := from.c.Send(to.c.SelfPublicKey(), []byte(payload)); err != nil {
			t.Fatalf("%s: send: %v", what, err)
		}
		select {
		case p := <-to.packets:
			if string(p.Data) != payload {
				continue // a late copy of an earlier step's packet
			}
			if p.Source != from.c.SelfPublicKey() {
				t.Fatalf("%s: got %q from %s, want it from %s", what, p.Data, p.Source.ShortString(), from.c.SelfPublicKey().ShortString())
			}
			return
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: no packet relayed before the deadline: %v", what, ctx.Err())
		}
	}
}

// Two relays meshed with one key relay between nodes homed on different
// relays, both ways; a relay that goes away and comes back on its address
// is meshed again; a relay or client with another mesh key is refused, and
// the log says so without the key.
func TestRelayMesh(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ts := startServer(t, testTailnet(), "")
	meshKey := newMeshKey(t)
	dirB := t.TempDir()
	relayA := startMeshRelay(t, ts, "", t.TempDir(), meshKey)
	relayB := startMeshRelay(t, ts, "", dirB, meshKey, relayA.node())
	relayA.mesh.SetPeers([]*tailcfg.DERPNode{relayA.node(), relayB.node()}) // itself included, as every replica gets one list
	relayB.mesh.SetPeers([]*tailcfg.DERPNode{relayA.node(), relayB.node()})

	a, b := newRawNode(t, ts), newRawNode(t, ts)
	a.register(a.registerReq(aliceKey))
	b.register(b.registerReq(serverKey))
	ca, cb := connectTo(t, relayA, a.nk), connectTo(t, relayB, b.nk)
	relayed(t, ctx, ca, cb, "relay A to relay B")
	relayed(t, ctx, cb, ca, "relay B to relay A")

	// B goes away; one on its address with its state comes back and meshes
	// with A, and A with it.
	addrB := relayB.d.ln.Addr().String()
	relayB.Close()
	relayB = startMeshRelay(t, ts, addrB, dirB, meshKey, relayA.node())
	cb = connectTo(t, relayB, b.nk)
	relayed(t, ctx, ca, cb, "relay A to the restarted relay B")
	relayed(t, ctx, cb, ca, "the restarted relay B to relay A")

	// A relay with another key is refused, and so is a client with one.
	wrongKey := newMeshKey(t)
	relayC := startMeshRelay(t, ts, "", t.TempDir(), wrongKey, relayA.node())
	testkit.WaitFor(t, ctx, "relay A refusing relay C's mesh connection", func() (bool, string) {
		return strings.Contains(relayA.log.String(), errMeshKey.Error()), "relay A's log:\n" + relayA.log.String()
	})
	mk, err := key.ParseDERPMesh(wrongKey)
	if err != nil {
		t.Fatal(err)
	}
	region := &tailcfg.DERPRegion{RegionID: 900, Nodes: []*tailcfg.DERPNode{relayA.node()}}
	impostor := derphttp.NewRegionClient(key.NewNode(), t.Logf, netmon.NewStatic(), func() *tailcfg.DERPRegion { return region })
	impostor.MeshKey = mk
	t.Cleanup(func() { impostor.Close() })
	if m, err := recv(t, impostor); err == nil {
		t.Errorf("a client with the wrong mesh key got %T from the relay, want its connection closed", m)
	}
	relayC.Close()
	for name, log := range map[string]string{"A": relayA.log.String(), "B": relayB.log.String(), "C": relayC.log.String()} {
		for _, k := range []string{meshKey, wrongKey} {
			if strings.Contains(strings.ToLower(log), k) {
				t.Errorf("relay %s logged a mesh key", name)
			}
		}
	}
}

// The DERP map of a meshed relay lists it first and its peers after it,
// once each, in its region.
func TestRelayMapWithPeers(t *testing.T) {
	d, err := StartDERP(context.Background(), DERPConfig{STUNListen: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	self := *d.node
	peer, err := ParseMeshPeer("https://192.0.2.7:8443#sha256-raw:" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	selfURL := "https://" + d.ln.Addr().String()
	selfAgain, err := ParseMeshPeer(selfURL)
	if err != nil {
		t.Fatal(err)
	}
	got := d.MapWithPeers([]*tailcfg.DERPNode{peer, selfAgain, peer})
	selfName := "900-" + d.ln.Addr().String()
	want := []*tailcfg.DERPNode{
		{Name: selfName, RegionID: 900, HostName: self.HostName, IPv4: self.IPv4, IPv6: self.IPv6, DERPPort: self.DERPPort, STUNPort: -1, CertName: self.CertName},
		{Name: "900-192.0.2.7:8443", RegionID: 900, HostName: "192.0.2.7", IPv4: "192.0.2.7", IPv6: "none", DERPPort: 8443, STUNPort: -1, CertName: "sha256-raw:" + strings.Repeat("ab", 32)},
	}
	if diff := cmp.Diff(want, got.Regions[900].Nodes); diff != "" {
		t.Errorf("nodes of region 900 (-want +got):\n%s", diff)
	}
	if got.Regions[900].RegionCode != "tailplane" || d.Map.Regions[900].Nodes[0].Name != "900a" {
		t.Errorf("region code %q, own map's node %q: want the relay's region and its own map unchanged", got.Regions[900].RegionCode, d.Map.Regions[900].Nodes[0].Name)
	}
	if _, err := d.StartMesh(context.Background(), nil); err == nil {
		t.Error("StartMesh on a relay without a mesh key: no error")
	}
}

func TestParseMeshPeer(t *testing.T) {
	pin := "sha256-raw:" + strings.Repeat("0f", 32)
	for _, tc := range []struct {
		in      string
		want    *tailcfg.DERPNode
		wantErr string
	}{
		{in: "https://10.0.0.2:8443", want: &tailcfg.DERPNode{HostName: "10.0.0.2", IPv4: "10.0.0.2", IPv6: "none", DERPPort: 8443}},
		{in: "https://relay2.example.com", want: &tailcfg.DERPNode{HostName: "relay2.example.com", DERPPort: 443}},
		{in: "https://[2001:db8::2]:8443/derp#" + pin, want: &tailcfg.DERPNode{HostName: "2001:db8::2", IPv6: "2001:db8::2", IPv4: "none", DERPPort: 8443, CertName: pin}},
		{in: "https://10.0.0.2:8443#sha256-raw:" + strings.Repeat("0F", 32), want: &tailcfg.DERPNode{HostName: "10.0.0.2", IPv4: "10.0.0.2", IPv6: "none", DERPPort: 8443, CertName: pin}},
		{in: "http://10.0.0.2:8443", wantErr: "the scheme must be https"},
		{in: "10.0.0.2:8443", wantErr: "want https://HOST"},
		{in: "https://:8443", wantErr: "has no host"},
		{in: "https://10.0.0.2:0", wantErr: "is not a TCP port"},
		{in: "https://10.0.0.2:99999", wantErr: "is not a TCP port"},
		{in: "https://u:p@10.0.0.2", wantErr: "only a host"},
		{in: "https://10.0.0.2/other", wantErr: "only a host"},
		{in: "https://10.0.0.2?x=1", wantErr: "only a host"},
		{in: "https://10.0.0.2#sha256:" + strings.Repeat("0f", 32), wantErr: "is not sha256-raw:"},
		{in: "https://10.0.0.2#sha256-raw:0f", wantErr: "is not sha256-raw:"},
		{in: "https://10.0.0.2#sha256-raw:" + strings.Repeat("zz", 32), wantErr: "is not sha256-raw:"},
		{in: "https://%zz", wantErr: "is not a URL"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMeshPeer(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseMeshPeer(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseMeshPeer(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func FuzzParseMeshPeer(f *testing.F) {
	for _, s := range []string{"https://10.0.0.2:8443", "https://relay.example.com#sha256-raw:" + strings.Repeat("ab", 32), "https://[::1]:1/derp"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseMeshPeer(s)
		if err != nil {
			return
		}
		if n.HostName == "" || n.DERPPort <= 0 || n.DERPPort > 65535 {
			t.Fatalf("ParseMeshPeer(%q) = %+v: no host or a bad port", s, n)
		}
		if n.CertName != "" && (!strings.HasPrefix(n.CertName, "sha256-raw:") || len(n.CertName) != len("sha256-raw:")+64) {
			t.Fatalf("ParseMeshPeer(%q) gave the pin %q", s, n.CertName)
		}
	})
}

// SetDERPMap replaces the server's own map while it serves: a connected
// node gets the new one with the policy's derpMap still applied, and a
// config prepared before is installed with the new one too.
func TestSetDERPMapReachesNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tn := testTailnet()
	tn.Policy.DERPMap = json.RawMessage(`{"Regions": {"950": {"RegionID": 950, "RegionCode": "own", "Nodes": [{"Name": "950a", "RegionID": 950, "HostName": "derp.example.com"}]}}}`)
	ts := startServer(t, tn, "")
	if err := ts.SetConfig(ctx, tn); err != nil {
		t.Fatal(err)
	}
	a := newRawNode(t, ts)
	a.register(a.registerReq(aliceKey))
	s := a.stream(ctx, a.mapReq(true))
	s.next()
	prepared, err := ts.Prepare(tn) // before the map changes
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ParseMeshPeer("https://192.0.2.7:8443")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.SetDERPMap(ctx, ts.DERP.MapWithPeers([]*tailcfg.DERPNode{peer})); err != nil {
		t.Fatal(err)
	}
	hosts := func(m *tailcfg.DERPMap) map[int][]string {
		got := map[int][]string{}
		for id, r := range m.Regions {
			for _, n := range r.Nodes {
				got[id] = append(got[id], n.HostName)
			}
		}
		return got
	}
	want := map[int][]string{900: {ts.DERP.node.HostName, "192.0.2.7"}, 950: {"derp.example.com"}}
	for {
		m := s.next()
		if m.DERPMap == nil {
			continue // a delta without a map
		}
		if diff := cmp.Diff(want, hosts(m.DERPMap)); diff != "" {
			t.Fatalf("after SetDERPMap: DERP map hosts (-want +got):\n%s", diff)
		}
		break
	}
	if err := ts.Install(ctx, prepared); err != nil {
		t.Fatal(err)
	}
	s.next() // the config, as a delta: the DERP map stays as it was
	if diff := cmp.Diff(want, hosts(s.netmap().DERPMap)); diff != "" {
		t.Fatalf("after installing a config prepared before SetDERPMap: DERP map hosts (-want +got):\n%s", diff)
	}
}
