package control

import (
	"context"
	"encoding/json"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
)

// netmapModel is what a Tailscale client holds after applying map
// messages as tailscaled does (controlclient's map session): a non-empty
// Peers replaces the peer list, PeersChanged adds or replaces peers,
// PeersRemoved drops them, a PacketFilters map replaces the named filters
// ("*" clears them all), user profiles are added, and every other part is
// replaced when a message carries it. PeersChangedPatch is not applied:
// it changes only runtime fields (endpoints, online, ...), which the tests
// using the model do not compare. The zero value holds nothing.
type netmapModel struct {
	self     *tailcfg.Node
	profiles map[tailcfg.UserID]tailcfg.UserProfile
	peers    map[tailcfg.NodeID]*tailcfg.Node
	filters  map[string][]tailcfg.FilterRule
	dns      *tailcfg.DNSConfig
	derp     *tailcfg.DERPMap
	ssh      *tailcfg.SSHPolicy
	domain   string
}

func (h *netmapModel) apply(m *tailcfg.MapResponse) {
	if h.peers == nil {
		h.peers = map[tailcfg.NodeID]*tailcfg.Node{}
		h.filters = map[string][]tailcfg.FilterRule{}
		h.profiles = map[tailcfg.UserID]tailcfg.UserProfile{}
	}
	for _, up := range m.UserProfiles {
		h.profiles[up.ID] = up
	}
	if m.Node != nil {
		h.self = m.Node
	}
	if len(m.Peers) > 0 {
		clear(h.peers)
		for _, p := range m.Peers {
			h.peers[p.ID] = p
		}
	}
	for _, p := range m.PeersChanged {
		h.peers[p.ID] = p
	}
	for _, id := range m.PeersRemoved {
		delete(h.peers, id)
	}
	if m.PacketFilters != nil {
		if _, ok := m.PacketFilters["*"]; ok {
			clear(h.filters)
		}
		for k, f := range m.PacketFilters {
			if k != "*" {
				h.filters[k] = f
			}
		}
	}
	if m.DNSConfig != nil {
		h.dns = m.DNSConfig
	}
	if m.DERPMap != nil {
		h.derp = m.DERPMap
	}
	if m.SSHPolicy != nil {
		h.ssh = m.SSHPolicy
	}
	if m.Domain != "" {
		h.domain = m.Domain
	}
}

// netmap returns what h holds as one full netmap: its peers sorted by ID,
// its filters under their names and the profiles of its users.
func (h *netmapModel) netmap() *tailcfg.MapResponse {
	m := &tailcfg.MapResponse{Node: h.self, DNSConfig: h.dns, DERPMap: h.derp, SSHPolicy: h.ssh, Domain: h.domain,
		PacketFilters: maps.Clone(h.filters)}
	users := map[tailcfg.UserID]bool{}
	if h.self != nil {
		users[h.self.User] = true
	}
	for _, id := range slices.Sorted(maps.Keys(h.peers)) {
		m.Peers = append(m.Peers, h.peers[id])
		users[h.peers[id].User] = true
	}
	for _, id := range slices.Sorted(maps.Keys(users)) {
		if up, ok := h.profiles[id]; ok {
			m.UserProfiles = append(m.UserProfiles, up)
		}
	}
	return m
}

// netmap returns what the client holds after the messages read so far.
func (s *mapStream) netmap() *tailcfg.MapResponse { return s.held.netmap() }

// policyParts is what the policy decides in a netmap, as JSON: the
// node's own and its peers' policy-derived fields, its packet filter and
// its SSH policy.
func policyParts(t *testing.T, m *tailcfg.MapResponse) string {
	t.Helper()
	type node struct {
		ID            tailcfg.NodeID
		Name          string
		Tags          []string
		AllowedIPs    []netip.Prefix
		PrimaryRoutes []netip.Prefix
		CapMap        tailcfg.NodeCapMap
	}
	of := func(v *tailcfg.Node) node { return node{v.ID, v.Name, v.Tags, v.AllowedIPs, v.PrimaryRoutes, v.CapMap} }
	p := struct {
		Self     node
		Peers    []node
		Filter   []tailcfg.FilterRule
		SSH      *tailcfg.SSHPolicy
		DNS      *tailcfg.DNSConfig
		DERP     []int
		Profiles []tailcfg.UserProfile
	}{Self: of(m.Node), Filter: m.PacketFilters["base"], SSH: m.SSHPolicy, DNS: m.DNSConfig}
	for _, v := range m.Peers {
		p.Peers = append(p.Peers, of(v))
	}
	if m.DERPMap != nil {
		p.DERP = slices.Sorted(maps.Keys(m.DERPMap.Regions))
	}
	p.Profiles = slices.SortedFunc(slices.Values(m.UserProfiles), func(a, b tailcfg.UserProfile) int { return int(a.ID - b.ID) })
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCommitSendsDelta installs config changes: each connected node gets
// one delta (no full peer list) with its packet filter, the peers it
// gained, lost or whose views changed, and the DNS config or user
// profiles when they changed, and what it then holds equals a fresh full
// netmap. A change of the domain still sends full netmaps.
func TestCommitSendsDelta(t *testing.T) {
	tn := testTailnet()
	tn.Policy.ACLs = []schema.ACL{{Action: "accept", Src: []string{"alice@example.com"}, Dst: []string{"tag:server:22"}}}
	ts := startServer(t, tn, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice, bob, server := newRawNode(t, ts), newRawNode(t, ts), newRawNode(t, ts)
	alice.register(alice.registerReq(aliceKey))
	bob.register(bob.registerReq(limitedKey))
	server.register(server.registerReq(serverKey))
	nodes := map[string]*rawNode{"alice": alice, "bob": bob, "server": server}
	streams := map[string]*mapStream{}
	for name, n := range nodes {
		streams[name] = n.stream(ctx, n.mapReq(true))
		streams[name].next()
	}
	rule := func(src, dst string) schema.ACL {
		return schema.ACL{Action: "accept", Src: []string{src}, Dst: []string{dst}}
	}
	for _, tt := range []struct {
		name  string
		edit  func(*schema.Tailnet)
		full  bool
		peers map[string]int // peers each node holds afterwards
	}{
		{"filter only", func(tn *schema.Tailnet) {
			tn.Policy.ACLs = append(tn.Policy.ACLs, rule("alice@example.com", "tag:server:80"))
		}, false, map[string]int{"alice": 1, "bob": 0, "server": 1}},
		{"peers gained", func(tn *schema.Tailnet) {
			tn.Policy.ACLs = append(tn.Policy.ACLs, rule("bob@example.com", "tag:server:443"))
		}, false, map[string]int{"alice": 1, "bob": 1, "server": 2}},
		{"views changed", func(tn *schema.Tailnet) {
			tn.Policy.NodeAttrs = []schema.NodeAttr{{Target: []string{"tag:server"}, Attr: []string{"funnel"}}}
		}, false, map[string]int{"alice": 1, "bob": 1, "server": 2}},
		{"peers lost", func(tn *schema.Tailnet) {
			tn.Policy.ACLs = slices.DeleteFunc(tn.Policy.ACLs, func(a schema.ACL) bool { return a.Src[0] == "bob@example.com" })
		}, false, map[string]int{"alice": 1, "bob": 0, "server": 1}},
		{"dns changed", func(tn *schema.Tailnet) {
			tn.DNS.Records = nil
		}, false, map[string]int{"alice": 1, "bob": 0, "server": 1}},
		{"user renamed", func(tn *schema.Tailnet) {
			tn.Users["alice@example.com"] = schema.User{Login: "alice@example.com", Name: "Alice Liddell", Role: schema.RoleAdmin}
		}, false, map[string]int{"alice": 1, "bob": 0, "server": 1}},
		{"domain changed", func(tn *schema.Tailnet) {
			tn.Settings.Domain = "tail2.test"
		}, true, map[string]int{"alice": 1, "bob": 0, "server": 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.edit(tn)
			if err := ts.SetConfig(ctx, tn); err != nil {
				t.Fatal(err)
			}
			for name, s := range streams {
				m := s.next()
				for m.PacketFilters == nil { // a runtime change of a peer may come first
					m = s.next()
				}
				if full := m.Domain != ""; full != tt.full {
					t.Errorf("%s: got a full netmap: %v, want %v", name, full, tt.full)
				}
				if !tt.full && len(m.Peers) > 0 {
					t.Errorf("%s: the delta lists every peer (%d)", name, len(m.Peers))
				}
				held := s.netmap()
				if len(held.Peers) != tt.peers[name] {
					t.Errorf("%s holds %d peers, want %d", name, len(held.Peers), tt.peers[name])
				}
				if diff := cmp.Diff(policyParts(t, nodes[name].selfMap()), policyParts(t, held)); diff != "" {
					t.Errorf("%s: what it holds differs from a fresh netmap (-fresh +held):\n%s", name, diff)
				}
			}
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			defer wcancel()
			if err := ts.WaitPropagated(wctx); err != nil {
				t.Errorf("WaitPropagated after every node got the change: %v", err)
			}
		})
	}
}

func TestIDSet(t *testing.T) {
	for _, tt := range []struct {
		name    string
		add     []tailcfg.NodeID
		remove  []tailcfg.NodeID
		want    []tailcfg.NodeID
		blocks  int
		missing []tailcfg.NodeID
	}{
		{"empty", nil, nil, nil, 0, []tailcfg.NodeID{0, 1, 4096}},
		{"one block", []tailcfg.NodeID{5, 1, 4095, 5}, nil, []tailcfg.NodeID{1, 5, 4095}, 1, []tailcfg.NodeID{0, 4096}},
		{"spread", []tailcfg.NodeID{1 << 40, 4096, 3, -5}, []tailcfg.NodeID{3, 7}, []tailcfg.NodeID{-5, 4096, 1 << 40}, 4, []tailcfg.NodeID{3, -4, 1<<40 + 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s idSet
			for _, id := range tt.add {
				s.add(id)
			}
			for _, id := range tt.remove {
				s.remove(id)
			}
			var got []tailcfg.NodeID
			s.each(func(id tailcfg.NodeID) { got = append(got, id) })
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("members (-want +got):\n%s", diff)
			}
			for _, id := range tt.want {
				if !s.has(id) {
					t.Errorf("has(%d) = false", id)
				}
			}
			for _, id := range tt.missing {
				if s.has(id) {
					t.Errorf("has(%d) = true", id)
				}
			}
			if len(s.blocks) != tt.blocks {
				t.Errorf("%d blocks, want %d", len(s.blocks), tt.blocks)
			}
		})
	}
}

// TestResyncFallsBackToFull checks when a config change is sent as a full
// netmap after all: when the delta would resend most of a node's peers,
// when a session fell too many configs behind, and for a node with no
// policy view.
func TestResyncFallsBackToFull(t *testing.T) {
	p := segmentedPlan{nodes: 303, groupSize: 100, services: 3}
	w := segmentedWorld(t, p)
	g0, g1 := w.nodes[10], w.nodes[150] // members of the first two of three groups
	drain := func(n *node) pendingDelta {
		d := n.sess.take()
		if !d.full && d.resync.pending {
			w.srv.resolveResync(n.sess, n.id, &d)
		}
		if !d.full {
			n.sess.noteSent(&d)
		}
		return d
	}
	install := func(tn *schema.Tailnet) {
		c, err := w.srv.Prepare(tn)
		if err != nil {
			t.Fatal(err)
		}
		w.install(t.Context(), c)
	}

	install(p.tailnet(2)) // every filter changes, no peer set
	if d := drain(g0); d.full || !d.filterSet || len(d.changed)+len(d.removed) != 0 {
		t.Errorf("filter-only change: full %v, filter sent %v, %d changed, %d removed; want a delta with the filter alone", d.full, d.filterSet, len(d.changed), len(d.removed))
	}

	tn := p.tailnet(3)
	tn.Policy.ACLs = append(tn.Policy.ACLs, schema.ACL{Action: "accept", Src: []string{"tag:g0"}, Dst: []string{"tag:g1:22", "tag:g2:22"}})
	install(tn) // g0 gains 200 peers, more than half of the 302 it sees then; g1 gains 100 of 202
	if d := drain(g0); !d.full {
		t.Errorf("a change that resends %d of %d peers was sent as a delta, want a full netmap", len(d.changed), w.pol.PeerCount(g0))
	}
	if d := drain(g1); d.full || len(d.changed) != 100 {
		t.Errorf("g1 gaining 100 of 202 peers: full %v, %d changed; want a delta with the 100", d.full, len(d.changed))
	}
	if d := drain(w.nodes[1]); d.full || len(d.changed) != 0 {
		t.Errorf("a service whose peers stay: full %v, %d changed; want a delta without peers", d.full, len(d.changed))
	}

	for rev := range maxPendingResyncs + 1 {
		install(p.tailnet(10 + rev))
	}
	if d := drain(g0); !d.full {
		t.Errorf("a session %d configs behind got a delta, want a full netmap", maxPendingResyncs+1)
	}

	g1.pending = true // not in the inventory any more
	install(p.tailnet(30))
	if d := drain(g1); !d.full {
		t.Errorf("a node without a policy view got a delta, want a full netmap")
	}
}
