package control

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
)

// peerNamesOf returns the MagicDNS names of a netmap's peers.
func peerNamesOf(m *tailcfg.MapResponse) []string {
	var out []string
	for _, p := range m.Peers {
		out = append(out, strings.TrimSuffix(p.Name, ".tail.test."))
	}
	slices.Sort(out)
	return out
}

func TestPolicyShapesNetmaps(t *testing.T) {
	tn := testTailnet()
	tn.Policy.ACLs = []schema.ACL{
		{Action: "accept", Src: []string{"alice@example.com"}, Dst: []string{"tag:server:22"}},
	}
	ts := startServer(t, tn, "")
	reg := func(host, authKey string, hi func(*tailcfg.Hostinfo)) *rawNode {
		n := newRawNode(t, ts)
		req := n.registerReq(authKey)
		req.Hostinfo.Hostname = host
		if hi != nil {
			hi(req.Hostinfo)
		}
		if r := n.register(req); r.Error != "" {
			t.Fatalf("%s: %s", host, r.Error)
		}
		return n
	}
	alice := reg("alice-laptop", aliceKey, nil)
	bob := reg("bob-laptop", limitedKey, nil)
	server := reg("server", serverKey, nil)
	reg("router", serverKey, func(hi *tailcfg.Hostinfo) {
		hi.RequestTags = []string{"tag:router"}
		hi.RoutableIPs = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")}
	})

	t.Run("visibility", func(t *testing.T) {
		for _, tt := range []struct {
			n    *rawNode
			want []string
		}{
			{alice, []string{"router", "server"}},
			{bob, nil},
			{server, []string{"alice-laptop"}},
		} {
			m := tt.n.selfMap()
			if got := peerNamesOf(m); !slices.Equal(got, tt.want) {
				t.Errorf("%s sees %v, want %v", m.Node.Name, got, tt.want)
			}
		}
	})

	t.Run("server-filter-allows-alice-on-22", func(t *testing.T) {
		m := server.selfMap()
		aliceIP := alice.selfMap().Node.Addresses[0].Addr().String()
		rules := m.PacketFilters["base"]
		found := false
		for _, r := range rules {
			for _, dp := range r.DstPorts {
				if dp.Ports == (tailcfg.PortRange{First: 22, Last: 22}) && slices.ContainsFunc(r.SrcIPs, func(s string) bool { return strings.HasPrefix(s, aliceIP) }) {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("server's filter %+v lacks alice (%s) -> port 22", rules, aliceIP)
		}
		if bm := bob.selfMap(); bm.PacketFilters["base"] != nil {
			t.Errorf("bob gets filter %+v, want deny-all", bm.PacketFilters)
		}
		if _, ok := bob.selfMap().PacketFilters["*"]; !ok {
			t.Errorf("bob's netmap does not reset the filter with \"*\"")
		}
	})

	t.Run("approved-routes-only", func(t *testing.T) {
		m := alice.selfMap()
		i := slices.IndexFunc(m.Peers, func(p *tailcfg.Node) bool { return strings.HasPrefix(p.Name, "router.") })
		if i < 0 {
			t.Fatal("alice does not see the router")
		}
		p := m.Peers[i]
		want := netip.MustParsePrefix("192.0.2.0/24")
		if !slices.Contains(p.AllowedIPs, want) || !slices.Contains(p.PrimaryRoutes, want) {
			t.Errorf("router AllowedIPs=%v PrimaryRoutes=%v, want the approved %v", p.AllowedIPs, p.PrimaryRoutes, want)
		}
		if slices.Contains(p.AllowedIPs, netip.MustParsePrefix("198.51.100.0/24")) {
			t.Errorf("unapproved route 198.51.100.0/24 in AllowedIPs %v", p.AllowedIPs)
		}
		if !slices.Equal(p.Tags, []string{"tag:router", "tag:server"}) {
			t.Errorf("router tags = %v", p.Tags)
		}
	})

	t.Run("new-source-updates-filter-as-delta", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s := server.stream(ctx, server.mapReq(true))
		s.next()
		reg("alice-phone", aliceKey, nil)
		// The new peer and the new filter may come in one message or two.
		var changed []*tailcfg.Node
		m := s.next()
		for {
			if m.Node != nil || m.Peers != nil {
				t.Fatalf("a join sent a full netmap to the server, want a delta")
			}
			changed = append(changed, m.PeersChanged...)
			if m.PacketFilters != nil {
				break
			}
			m = s.next()
		}
		if len(changed) != 1 || !strings.HasPrefix(changed[0].Name, "alice-phone.") {
			t.Fatalf("PeersChanged = %v, want alice-phone", changed)
		}
		phoneIP := changed[0].Addresses[0].Addr().String()
		found := false
		for _, r := range m.PacketFilters["base"] {
			found = found || slices.ContainsFunc(r.SrcIPs, func(s string) bool { return strings.HasPrefix(s, phoneIP) })
		}
		if !found {
			t.Errorf("new filter %+v does not let alice-phone (%s) in", m.PacketFilters, phoneIP)
		}
	})

	t.Run("policy-change-at-runtime", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s := bob.stream(ctx, bob.mapReq(true))
		if got := peerNamesOf(s.next()); len(got) != 0 {
			t.Fatalf("bob sees %v before the change", got)
		}
		tn2 := testTailnet()
		tn2.Policy.ACLs = append(slices.Clone(tn.Policy.ACLs),
			schema.ACL{Action: "accept", Src: []string{"bob@example.com"}, Dst: []string{"tag:server:80"}})
		if err := ts.SetConfig(ctx, tn2); err != nil {
			t.Fatal(err)
		}
		s.next() // the config change, as a delta
		if got := peerNamesOf(s.netmap()); !slices.Equal(got, []string{"router", "server"}) {
			t.Errorf("after the change bob sees %v, want router and server", got)
		}
		bad := testTailnet()
		bad.Policy.ACLs = []schema.ACL{{Action: "accept", Src: []string{"group:nope"}, Dst: []string{"*:*"}}}
		if err := ts.SetConfig(ctx, bad); err == nil {
			t.Errorf("SetConfig accepted a policy that does not compile")
		}
	})
}

func TestExitNodeSSHAndNodeAttrs(t *testing.T) {
	tn := testTailnet()
	tn.Routes["tag:router"] = append(tn.Routes["tag:router"], netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
	tn.Policy.SSH = []schema.SSHRule{{Action: "accept", Src: []string{"alice@example.com"}, Dst: []string{"tag:server"}, Users: []string{"root"}}}
	tn.Policy.NodeAttrs = []schema.NodeAttr{{Target: []string{"tag:server"}, Attr: []string{"funnel"}}}
	ts := startServer(t, tn, "")
	alice := newRawNode(t, ts)
	alice.register(alice.registerReq(aliceKey))
	exit := newRawNode(t, ts)
	req := exit.registerReq(serverKey)
	req.Hostinfo.Hostname = "exit"
	req.Hostinfo.RequestTags = []string{"tag:router"}
	req.Hostinfo.RoutableIPs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	if r := exit.register(req); r.Error != "" {
		t.Fatal(r.Error)
	}

	m := alice.selfMap()
	if len(m.Peers) != 1 {
		t.Fatalf("alice sees %d peers, want the exit node", len(m.Peers))
	}
	p := m.Peers[0]
	if !slices.Contains(p.AllowedIPs, netip.MustParsePrefix("0.0.0.0/0")) || !slices.Contains(p.AllowedIPs, netip.MustParsePrefix("::/0")) {
		t.Errorf("exit node AllowedIPs = %v, want both default routes", p.AllowedIPs)
	}
	if len(p.PrimaryRoutes) != 0 {
		t.Errorf("exit node PrimaryRoutes = %v, want none (exit routes are not subnets)", p.PrimaryRoutes)
	}

	em := exit.selfMap()
	if em.SSHPolicy == nil || len(em.SSHPolicy.Rules) == 0 {
		t.Errorf("tag:server node got no SSH policy: %+v", em.SSHPolicy)
	}
	if _, ok := em.Node.CapMap["funnel"]; !ok {
		t.Errorf("tag:server node CapMap = %v, want funnel", em.Node.CapMap)
	}
	if am := alice.selfMap(); am.SSHPolicy != nil && len(am.SSHPolicy.Rules) > 0 {
		t.Errorf("alice's node got SSH rules %+v, want none", am.SSHPolicy)
	}
}

// registerRouter registers a raw node named host, tagged tag:router,
// that advertises subnet.
func registerRouter(t *testing.T, ts *testServer, host string, subnet netip.Prefix) *rawNode {
	t.Helper()
	n := newRawNode(t, ts)
	req := n.registerReq(serverKey)
	req.Hostinfo.Hostname = host
	req.Hostinfo.RequestTags = []string{"tag:router"}
	req.Hostinfo.RoutableIPs = []netip.Prefix{subnet}
	if r := n.register(req); r.Error != "" {
		t.Fatal(r.Error)
	}
	return n
}

func TestSubnetRouterFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServer(t, testTailnet(), "")
	subnet := netip.MustParsePrefix("192.0.2.0/24")
	router := func(host string) *rawNode { return registerRouter(t, ts, host, subnet) }
	r1, r2 := router("r1"), router("r2")
	mapReq := func(n *rawNode) *tailcfg.MapRequest {
		req := n.mapReq(true)
		req.Hostinfo.RequestTags = []string{"tag:router"}
		req.Hostinfo.RoutableIPs = []netip.Prefix{subnet}
		return req
	}
	r1ctx, r1gone := context.WithCancel(ctx)
	r1.stream(r1ctx, mapReq(r1)).next()
	r2.stream(ctx, mapReq(r2)).next()

	alice := newRawNode(t, ts)
	alice.register(alice.registerReq(aliceKey))
	s := alice.stream(ctx, alice.mapReq(true))
	primaries := map[string]bool{}
	note := func(nodes []*tailcfg.Node) {
		for _, p := range nodes {
			primaries[strings.TrimSuffix(p.Name, ".tail.test.")] = slices.Contains(p.PrimaryRoutes, subnet)
		}
	}
	note(s.next().Peers)
	if !primaries["r1"] || primaries["r2"] {
		t.Fatalf("with both routers online primaries = %v, want r1 only", primaries)
	}

	r1gone()
	for primaries["r1"] || !primaries["r2"] {
		note(s.next().PeersChanged)
	}
	if !slices.Contains(ts.nodeView(t, "r2").AllowedIPs, subnet) {
		t.Errorf("r2 does not carry the subnet after the failover")
	}
}

// nodeView returns the current view of the node with the given name.
func (ts *testServer) nodeView(t *testing.T, name string) *tailcfg.Node {
	var v *tailcfg.Node
	ts.do(context.Background(), func(w *world) error {
		if n := w.names[name]; n != nil {
			v = n.view
		}
		return nil
	})
	if v == nil {
		t.Fatalf("no node %q", name)
	}
	return v
}
