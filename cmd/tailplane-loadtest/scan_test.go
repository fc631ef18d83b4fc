package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// The reference: what encoding/json decodes from a map message into only
// the fields the load generator reads, and the frameInfo that makes.
type refMsg struct {
	KeepAlive         bool
	Node              *struct{ ID int64 }
	Peers             []refPeer
	PeersChanged      []refPeer
	PeersRemoved      []int64
	PeersChangedPatch []refPeer
	PacketFilters     map[string][]refRule
	DERPMap           json.RawMessage
}

type refPeer struct {
	ID        int64
	NodeID    int64
	Endpoints []netip.AddrPort
	Online    *bool
}

type refRule struct {
	DstPorts []struct{ Ports struct{ First, Last uint16 } }
}

func refInfo(t testing.TB, b []byte, probe int64) (*frameInfo, error) {
	var m refMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	fi := &frameInfo{keepAlive: m.KeepAlive, removed: m.PeersRemoved, probePort: -1, hasFilters: m.PacketFilters != nil, homePort: -1}
	if m.DERPMap != nil {
		var err error
		if fi.homePort, err = derpHome(m.DERPMap); err != nil {
			return nil, err
		}
	}
	if m.Node != nil {
		fi.selfID = m.Node.ID
	}
	for _, p := range m.Peers {
		fi.peers = append(fi.peers, p.ID)
	}
	for _, p := range m.PeersChanged {
		fi.changed = append(fi.changed, p.ID)
	}
	for i, list := range [][]refPeer{m.Peers, m.PeersChanged, m.PeersChangedPatch} {
		for _, p := range list {
			if p.Online != nil {
				mark := onlineMark{p.ID, *p.Online}
				if p.ID == 0 {
					mark.id = p.NodeID
				}
				fi.online[i] = append(fi.online[i], mark)
			}
		}
	}
	if probe > 0 {
		for _, list := range [][]refPeer{m.Peers, m.PeersChanged, m.PeersChangedPatch} {
			for _, p := range list {
				if (p.ID == probe || p.NodeID == probe) && len(p.Endpoints) > 0 {
					fi.probePort = int32(p.Endpoints[0].Port())
				}
			}
		}
	}
	for _, rules := range m.PacketFilters {
		for _, r := range rules {
			for _, d := range r.DstPorts {
				p := int(d.Ports.First)
				if d.Ports.First == d.Ports.Last && p > markerBase && p < markerBase+1000 {
					fi.filterRev = max(fi.filterRev, p-markerBase)
				}
			}
		}
	}
	return fi, nil
}

var infoCmp = []cmp.Option{cmp.AllowUnexported(frameInfo{}, onlineMark{}), cmpopts.EquateEmpty()}

// checkScan compares the scanner with the reference on b.
func checkScan(t *testing.T, b []byte, probe int64) {
	t.Helper()
	want, err := refInfo(t, b, probe)
	if err != nil {
		t.Fatalf("the reference decoder refuses the message: %v\n%s", err, b)
	}
	var s mapScanner
	got, err := s.scan(b, probe)
	if err != nil {
		t.Fatalf("scan: %v\n%s", err, b)
	}
	if diff := cmp.Diff(want, got, infoCmp...); diff != "" {
		t.Errorf("scan differs from encoding/json (-json +scan):\n%s\n%s", diff, b)
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func peerNode(id int64, eps ...netip.AddrPort) *tailcfg.Node {
	online := id%2 == 0
	return &tailcfg.Node{
		Online: &online,
		ID:     tailcfg.NodeID(id), StableID: "s", Name: "n.loadtest.internal.", Key: key.NewNode().Public(),
		Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}, Endpoints: eps,
		Hostinfo: (&tailcfg.Hostinfo{Hostname: `odd "name" \ here`, OS: "linux"}).View(),
		CapMap:   tailcfg.NodeCapMap{"cap": {`{"x":[1,"]}"]}`}},
	}
}

func ports(first, last uint16) tailcfg.FilterRule {
	return tailcfg.FilterRule{SrcIPs: []string{"*"}, DstPorts: []tailcfg.NetPortRange{{IP: "*", Ports: tailcfg.PortRange{First: first, Last: last}}}}
}

// TestScanMatchesJSON: on real map messages (tailcfg types through
// encoding/json, as the server sends them) and on hand-written variants
// (case-folded and escaped names, nulls, spacing), the scanner reads what
// encoding/json decodes.
func TestScanMatchesJSON(t *testing.T) {
	const probe = 7
	yes := true
	msgs := []struct {
		name string
		m    *tailcfg.MapResponse
	}{
		{"full", &tailcfg.MapResponse{
			Node: peerNode(3),
			DERPMap: &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{
				901: {RegionID: 901, Nodes: []*tailcfg.DERPNode{{Name: "z", DERPPort: 1}}},
				900: {RegionID: 900, Nodes: []*tailcfg.DERPNode{{Name: "a", HostName: "127.0.0.1", DERPPort: 18441}, {Name: "b", DERPPort: 18442}}},
			}},
			Peers: []*tailcfg.Node{peerNode(1, ap("127.0.0.1:1")), peerNode(probe, ap("127.0.0.1:60001"), ap("[::1]:2")), peerNode(9)},
			PacketFilters: map[string][]tailcfg.FilterRule{
				"base": {ports(0, 65535), ports(40002, 40002)}, "x": {ports(40005, 40005), ports(40001, 40009)},
			},
		}},
		{"delta", &tailcfg.MapResponse{
			PeersChanged:      []*tailcfg.Node{peerNode(probe, ap("127.0.0.1:60002")), peerNode(12)},
			PeersRemoved:      []tailcfg.NodeID{4, 5},
			PeersChangedPatch: []*tailcfg.PeerChange{{NodeID: probe, Endpoints: []netip.AddrPort{ap("127.0.0.1:60003")}}, {NodeID: 2, Online: new(bool)}, {NodeID: 3, Online: &yes}},
		}},
		{"patch-only", &tailcfg.MapResponse{PeersChangedPatch: []*tailcfg.PeerChange{{NodeID: probe, DERPRegion: 900}}}},
		{"keepalive", &tailcfg.MapResponse{KeepAlive: true}},
		{"filters-without-marker", &tailcfg.MapResponse{PacketFilters: map[string][]tailcfg.FilterRule{"*": nil}}},
		{"empty", &tailcfg.MapResponse{}},
	}
	for _, tt := range msgs {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			checkScan(t, b, probe)
			checkScan(t, b, 0)
		})
	}
	hand := []struct{ name, json string }{
		{"folded-names", `{"peers":[{"id":7,"endpoints":["1.2.3.4:5"]}],"node":{"iD":3},"KEEPALIVE":false}`},
		{"multi-byte-folded-names", "{\"Peers\":[{\"ID\":7,\"Endpoint\u017f\":[\"1.2.3.4:7\"]}],\"\u212aeepAlive\":true}"},
		{"escaped-names", `{"Pe\u0065rs":[{"\u0049D":7,"Endpoints":["1.2.3.4:6"]}]}`},
		{"nulls", `{"Node":null,"Peers":[null,{"ID":null}],"PeersRemoved":[null,3],"PacketFilters":{"a":null,"b":[null,{"DstPorts":[null,{"Ports":null}]}]}}`},
		{"null-filters", `{"PacketFilters":null,"KeepAlive":null}`},
		{"spacing", " {\n\t\"Peers\" : [ { \"ID\" : 8 , \"x\" : [ 1 , { \"}\" : \"]\\\"\" } ] } ] , \"KeepAlive\" : true } "},
		{"endpoints-before-id", `{"PeersChanged":[{"Endpoints":["9.9.9.9:60009"],"ID":7}]}`},
		{"top-null", `null`},
		{"null-derp-map", `{"DERPMap":null}`},
		{"online", `{"PeersChangedPatch":[{"NodeID":4,"Online":false},{"NodeID":5,"Online":null}],"Peers":[{"ID":1,"Online":true},{"Online":false,"NodeID":9}]}`},
		{"derp-map-without-nodes", `{"DERPMap":{"Regions":{"900":{"Nodes":[]},"7":null}}}`},
		{"node-id-after-skip", `{"Node":{"Name":"a\\","ID":11}}`},
	}
	for _, tt := range hand {
		t.Run(tt.name, func(t *testing.T) {
			checkScan(t, []byte(tt.json), probe)
		})
	}
}

// TestScanRefuses: a value of the wrong type where the scanner reads one
// is an error, as it is for encoding/json.
func TestScanRefuses(t *testing.T) {
	for _, in := range []string{
		`[]`, `{"Peers":{}}`, `{"Peers":[5]}`, `{"Node":{"ID":"5"}}`, `{"Node":{"ID":1.5}}`,
		`{"PeersRemoved":[true]}`, `{"KeepAlive":1}`, `{"Peers":[{"ID":1,"Online":"yes"}]}`, `{"PacketFilters":[]}`,
		`{"PacketFilters":{"a":[{"DstPorts":[{"Ports":{"First":70000}}]}]}}`, `{"Peers":[{"ID":1}`, `{"Peers":"`,
	} {
		var s mapScanner
		if _, err := s.scan([]byte(in), 7); err == nil {
			t.Errorf("scan(%s) = no error, want one", in)
		}
		if _, err := refInfo(t, []byte(in), 7); err == nil {
			t.Errorf("the reference accepts %s; the case is wrong", in)
		}
	}
}

// FuzzScan: on any input encoding/json can decode (made canonical first:
// no duplicate or case-folded duplicate names, which encoding/json merges
// in ways the server never relies on) the scanner reads the same; on any
// input at all it returns without panicking.
func FuzzScan(f *testing.F) {
	f.Add([]byte(`{"Peers":[{"ID":7,"Endpoints":["1.2.3.4:5"]}],"Node":{"ID":3}}`), int64(7))
	f.Add([]byte(`{"PacketFilters":{"base":[{"DstPorts":[{"IP":"*","Ports":{"First":40002,"Last":40002}}]}]}}`), int64(0))
	f.Add([]byte(`{"DERPMap":{"Regions":{"900":{"RegionID":900,"Nodes":[{"Name":"a","DERPPort":18441}]}}},"KeepAlive":true}`), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, probe int64) {
		var s mapScanner
		s.scan(b, probe)
		canon, ok := canonical(b)
		if !ok {
			return
		}
		if _, err := refInfo(t, canon, probe); err != nil {
			s.scan(canon, probe)
			return
		}
		checkScan(t, canon, probe)
	})
}

// canonical re-encodes a JSON document with exact numbers and without
// names that encoding/json would fold onto one another in one object.
func canonical(b []byte) ([]byte, bool) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil || d.More() {
		return nil, false
	}
	out, err := json.Marshal(dedupFolded(v))
	return out, err == nil
}

func dedupFolded(v any) any {
	switch v := v.(type) {
	case map[string]any:
		seen := map[string]bool{}
		out := map[string]any{}
		for k, x := range v {
			f := foldKey(k)
			if seen[f] {
				continue
			}
			seen[f] = true
			out[k] = dedupFolded(x)
		}
		return out
	case []any:
		for i := range v {
			v[i] = dedupFolded(v[i])
		}
	}
	return v
}

// foldKey maps names bytes.EqualFold holds equal to one string.
func foldKey(k string) string {
	return strings.Map(func(r rune) rune {
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				return r2
			}
			r = r2
		}
	}, k)
}

// BenchmarkScanFullNetmap: reading a full netmap of 1,000 peers with the
// scanner and with encoding/json into only the fields it reads.
func BenchmarkScanFullNetmap(b *testing.B) {
	m := &tailcfg.MapResponse{Node: peerNode(1)}
	for i := range 1000 {
		m.Peers = append(m.Peers, peerNode(int64(i+2), ap("127.0.0.1:10000"), ap("[::1]:10000")))
	}
	msg, err := json.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		var s mapScanner
		for b.Loop() {
			if _, err := s.scan(msg, 500); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			if _, err := refInfo(b, msg, 500); err != nil {
				b.Fatal(err)
			}
		}
	})
}
