package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"

	"tailscale.com/tailcfg"

	"github.com/tailplane/tailplane/schema"
)

// benchTailnet builds a tailnet with users, groups and tags sized for n
// nodes, and a policy of a few hundred rules: every group reaches its
// services, a few wide rules, grants with apps, SSH and nodeAttrs.
func benchTailnet(n int) (*schema.Tailnet, []Node) {
	const tags, groups = 40, 40
	users := n / 5
	t := &schema.Tailnet{Users: map[string]schema.User{}}
	pol := &t.Policy
	pol.Groups = map[string][]string{}
	pol.TagOwners = map[string][]string{}
	pol.Hosts = map[string]string{}
	for u := range users {
		login := fmt.Sprintf("user%d@example.com", u)
		t.Users[login] = schema.User{Login: login, Role: schema.RoleMember}
		g := fmt.Sprintf("group:g%d", u%groups)
		pol.Groups[g] = append(pol.Groups[g], login)
	}
	for i := range tags {
		pol.TagOwners[fmt.Sprintf("tag:t%d", i)] = []string{"group:g0"}
	}
	for i := range 20 {
		pol.Hosts[fmt.Sprintf("net%d", i)] = fmt.Sprintf("10.%d.0.0/16", i)
	}
	for i := range 300 {
		g, tag := fmt.Sprintf("group:g%d", i%groups), fmt.Sprintf("tag:t%d", i%tags)
		pol.ACLs = append(pol.ACLs, schema.ACL{Action: "accept", Src: []string{g}, Dst: []string{fmt.Sprintf("%s:%d", tag, 1000+i), fmt.Sprintf("net%d:443", i%20)}})
	}
	pol.ACLs = append(pol.ACLs,
		schema.ACL{Action: "accept", Src: []string{"autogroup:member"}, Dst: []string{"autogroup:self:*"}},
		schema.ACL{Action: "accept", Src: []string{"tag:t0"}, Dst: []string{"*:9100"}},
	)
	for i := range 20 {
		pol.Grants = append(pol.Grants, schema.Grant{Src: []string{fmt.Sprintf("group:g%d", i)}, Dst: []string{fmt.Sprintf("tag:t%d", i)},
			IP: []string{"tcp:5432"}, App: map[string][]json.RawMessage{"example.com/cap/db": {json.RawMessage(`{"role":"ro"}`)}}})
	}
	pol.SSH = []schema.SSHRule{
		{Action: "accept", Src: []string{"autogroup:member"}, Dst: []string{"autogroup:self"}, Users: []string{"autogroup:nonroot"}},
		{Action: "check", Src: []string{"group:g0"}, Dst: []string{"tag:t1", "tag:t2"}, Users: []string{"root"}},
	}
	pol.NodeAttrs = []schema.NodeAttr{{Target: []string{"tag:t3"}, Attr: []string{"funnel"}}}

	nodes := make([]Node, n)
	for i := range n {
		nd := Node{ID: tailcfg.NodeID(i + 1), Name: fmt.Sprintf("node%d", i),
			IPv4: netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)}),
			IPv6: netip.AddrFrom16([16]byte{0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 14: byte(i >> 8), 15: byte(i)}),
		}
		if i%10 < 3 {
			nd.Tags = []string{fmt.Sprintf("tag:t%d", i%tags)}
			if i%100 == 0 {
				r := netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", (i/100)%20))
				nd.RoutableIPs, nd.ApprovedRoutes = []netip.Prefix{r}, []netip.Prefix{r}
			}
		} else {
			nd.User = fmt.Sprintf("user%d@example.com", i%users)
		}
		nodes[i] = nd
	}
	return t, nodes
}

func BenchmarkCompile(b *testing.B) {
	t, _ := benchTailnet(10000)
	b.ReportAllocs()
	for b.Loop() {
		if _, diags := Compile(t); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}

// BenchmarkCompileEvaluate compiles the policy, evaluates it and computes
// every node's view: the cost of a full policy reload.
func BenchmarkCompileEvaluate(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			t, nodes := benchTailnet(n)
			peers := 0
			b.ReportAllocs()
			for b.Loop() {
				p, diags := Compile(t)
				if diags.HasErrors() {
					b.Fatal(diags)
				}
				res := p.Evaluate(nodes, Options{})
				peers = 0
				for _, nd := range nodes {
					peers += res.Node(nd.ID).Peers.Len()
				}
			}
			b.ReportMetric(float64(peers)/float64(n), "peers/node")
		})
	}
}

// BenchmarkNodeChange is one node changing its tags: the inventory is
// re-evaluated and the changed node's view computed.
func BenchmarkNodeChange(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			t, nodes := benchTailnet(n)
			p, diags := Compile(t)
			if diags.HasErrors() {
				b.Fatal(diags)
			}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				nodes[7].Tags = []string{fmt.Sprintf("tag:t%d", i%40)}
				nodes[7].User = ""
				res := p.Evaluate(nodes, Options{})
				res.Node(nodes[7].ID)
			}
		})
	}
}
