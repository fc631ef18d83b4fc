package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"

	"go4.org/netipx"
	"tailscale.com/tailcfg"
)

// hostedDefaultCaps are capabilities Tailscale's hosted control plane puts
// in every node's CapMap regardless of the policy; they are not compared.
// The ssh and file-sharing capabilities are compared: tailplane gives them
// to every node by default too (tailnet.ssh, tailnet.fileSharing).
var hostedDefaultCaps = map[string]bool{
	"https://tailscale.com/cap/is-admin":     true,
	"https://tailscale.com/cap/is-owner":     true,
	"https://tailscale.com/cap/tailnet-lock": true,
	"probe-udp-lifetime":                     true,
	"ssh-behavior-v1":                        true,
	"ssh-env-vars":                           true,
	"store-appc-routes":                      true,
	"tailnet-display-name":                   true,
	"default-auto-update":                    true,
}

// compareCase compares tailplane's output with the case's expectation,
// semantically, and returns one line per difference.
func compareCase(c *confCase, got map[string]confExpect) []string {
	var diffs []string
	for _, name := range slices.Sorted(mapKeys(c.Expect)) {
		want, g := c.Expect[name], got[name]
		add := func(format string, args ...any) {
			diffs = append(diffs, name+": "+fmt.Sprintf(format, args...))
		}
		both := slices.Concat(want.PacketFilter, g.PacketFilter)
		if d := diffLines(flowLines(want.PacketFilter, both), flowLines(g.PacketFilter, both)); d != "" {
			add("packetFilter:\n%s", d)
		}
		if d := diffLines(peerLines(want.Peers), peerLines(g.Peers)); d != "" {
			add("peers:\n%s", d)
		}
		if d := diffLines(sshLines(want.SSH), sshLines(g.SSH)); d != "" {
			add("ssh:\n%s", d)
		}
		if d := diffLines(capLines(want.CapMap), capLines(g.CapMap)); d != "" {
			add("capMap:\n%s", d)
		}
		if d := diffLines(prefixLines("allowed", want.SelfAllowedIPs), prefixLines("allowed", g.SelfAllowedIPs)); d != "" {
			add("selfAllowedIPs:\n%s", d)
		}
		if d := diffLines(prefixLines("primary", want.SelfPrimaryRoutes), prefixLines("primary", g.SelfPrimaryRoutes)); d != "" {
			add("selfPrimaryRoutes:\n%s", d)
		}
	}
	return diffs
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// diffLines diffs two sorted line sets, "-" for missing and "+" for extra.
func diffLines(want, got []string) string {
	w, g := map[string]bool{}, map[string]bool{}
	for _, l := range want {
		w[l] = true
	}
	for _, l := range got {
		g[l] = true
	}
	var out []string
	for _, l := range want {
		if !g[l] {
			out = append(out, "  - "+l)
		}
	}
	for _, l := range got {
		if !w[l] {
			out = append(out, "  + "+l)
		}
	}
	sort.Strings(out)
	out = slices.Compact(out)
	return strings.Join(out, "\n")
}

// parseIPSpec parses a SrcIPs or NetPortRange.IP entry.
func parseIPSpec(s string) *netipx.IPSet {
	var b netipx.IPSetBuilder
	switch {
	case s == "*":
		b.AddPrefix(netip.MustParsePrefix("0.0.0.0/0"))
		b.AddPrefix(netip.MustParsePrefix("::/0"))
	case strings.Contains(s, "-"):
		if r, err := netipx.ParseIPRange(s); err == nil {
			b.AddRange(r)
		}
	case strings.Contains(s, "/"):
		if p, err := netip.ParsePrefix(s); err == nil {
			b.AddPrefix(p.Masked())
		}
	default:
		if a, err := netip.ParseAddr(s); err == nil {
			b.Add(a)
		}
	}
	set, _ := b.IPSet()
	return set
}

func setOf(specs []string) *netipx.IPSet {
	var b netipx.IPSetBuilder
	for _, s := range specs {
		b.AddSet(parseIPSpec(s))
	}
	set, _ := b.IPSet()
	return set
}

func setString(s *netipx.IPSet) string {
	var parts []string
	for _, r := range s.Ranges() {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ",")
}

// flowLines renders a packet filter as what it lets through: for every
// elementary source range, protocol and elementary port range, the set of
// destinations; and for every source range and capability, the
// destinations granted it.
//
// The elementary ranges are cut at the boundaries of cutRules (both sides
// of a comparison), so filters that split or merge rules differently but
// let the same traffic through render the same lines.
func flowLines(rules, cutRules []tailcfg.FilterRule) []string {
	type flow struct {
		src    *netipx.IPSet
		protos []int
		dst    *netipx.IPSet
		ports  tailcfg.PortRange
	}
	type capFlow struct {
		src  *netipx.IPSet
		name string
		dst  *netipx.IPSet
	}
	var flows []flow
	var caps []capFlow
	var cuts []netip.Addr
	portCuts := map[int]bool{0: true, 65536: true}
	for _, r := range cutRules {
		for _, rg := range setOf(r.SrcIPs).Ranges() {
			cuts = append(cuts, rg.From(), rg.To().Next())
		}
		for _, dp := range r.DstPorts {
			portCuts[int(dp.Ports.First)] = true
			portCuts[int(dp.Ports.Last)+1] = true
		}
	}
	for _, r := range rules {
		src := setOf(r.SrcIPs)
		protos := r.IPProto
		if len(protos) == 0 {
			protos = []int{6, 17, 1, 58}
		}
		for _, dp := range r.DstPorts {
			flows = append(flows, flow{src, protos, parseIPSpec(dp.IP), dp.Ports})
		}
		for _, cg := range r.CapGrant {
			var b netipx.IPSetBuilder
			for _, p := range cg.Dsts {
				b.AddPrefix(p)
			}
			dst, _ := b.IPSet()
			for name, vals := range cg.CapMap {
				v, _ := json.Marshal(vals)
				caps = append(caps, capFlow{src, string(name) + "=" + string(v), dst})
			}
		}
	}
	pieces := elementaryRanges(cuts)
	ports := slices.Sorted(mapKeysInt(portCuts))
	acc := map[string]*netipx.IPSetBuilder{}
	addTo := func(key string, dst *netipx.IPSet) {
		if acc[key] == nil {
			acc[key] = &netipx.IPSetBuilder{}
		}
		acc[key].AddSet(dst)
	}
	for _, piece := range pieces {
		for _, f := range flows {
			if !f.src.ContainsRange(piece) {
				continue
			}
			for i := 0; i+1 < len(ports); i++ {
				lo, hi := ports[i], ports[i+1]-1
				if lo < int(f.ports.First) || hi > int(f.ports.Last) {
					continue
				}
				for _, p := range f.protos {
					addTo(fmt.Sprintf("src %s proto %d ports %d-%d", piece, p, lo, hi), f.dst)
				}
			}
		}
		for _, cf := range caps {
			if cf.src.ContainsRange(piece) {
				addTo(fmt.Sprintf("src %s cap %s", piece, cf.name), cf.dst)
			}
		}
	}
	var out []string
	for k, b := range acc {
		set, _ := b.IPSet()
		out = append(out, k+" -> "+setString(set))
	}
	sort.Strings(out)
	return out
}

func mapKeysInt(m map[int]bool) func(func(int) bool) {
	return func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// elementaryRanges splits the address space at cuts into the ranges
// between consecutive cut points.
func elementaryRanges(cuts []netip.Addr) []netipx.IPRange {
	cuts = slices.DeleteFunc(cuts, func(a netip.Addr) bool { return !a.IsValid() })
	slices.SortFunc(cuts, func(a, b netip.Addr) int { return a.Compare(b) })
	cuts = slices.Compact(cuts)
	var out []netipx.IPRange
	for i := 0; i+1 < len(cuts); i++ {
		from, to := cuts[i], cuts[i+1].Prev()
		if from.Is4() != to.Is4() || to.Less(from) {
			// Crossing from the end of IPv4 into IPv6: close the IPv4 range.
			if from.Is4() {
				out = append(out, netipx.IPRangeFrom(from, netip.MustParseAddr("255.255.255.255")))
			}
			continue
		}
		out = append(out, netipx.IPRangeFrom(from, to))
	}
	if n := len(cuts); n > 0 {
		last := cuts[n-1]
		if last.Is4() {
			out = append(out, netipx.IPRangeFrom(last, netip.MustParseAddr("255.255.255.255")))
		} else {
			out = append(out, netipx.IPRangeFrom(last, netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")))
		}
	}
	return out
}

func prefixLines(label string, ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, label+" "+p.Masked().String())
	}
	sort.Strings(out)
	return out
}

// peerLines renders peers as lines: each peer's name, its allowed IPs and
// the primary routes it carries for the viewer. Which router of a subnet
// is primary is compared exactly.
func peerLines(peers map[string]confPeer) []string {
	var out []string
	for name, p := range peers {
		out = append(out, "peer "+name)
		for _, l := range prefixLines("allowed", p.AllowedIPs) {
			out = append(out, "peer "+name+" "+l)
		}
		for _, l := range prefixLines("primary", p.PrimaryRoutes) {
			out = append(out, "peer "+name+" "+l)
		}
	}
	sort.Strings(out)
	return out
}

// sshLines flattens SSH rules into (principal, ssh user, local user,
// action, acceptEnv) tuples.
func sshLines(rules []*tailcfg.SSHRule) []string {
	var out []string
	for _, r := range rules {
		action, _ := json.Marshal(r.Action)
		env, _ := json.Marshal(r.AcceptEnv)
		for _, p := range r.Principals {
			pj, _ := json.Marshal(p)
			for u, local := range r.SSHUsers {
				out = append(out, fmt.Sprintf("%s user %q->%q action %s env %s", pj, u, local, action, env))
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func capLines(caps []string) []string {
	var out []string
	for _, c := range caps {
		if !hostedDefaultCaps[c] {
			out = append(out, "cap "+c)
		}
	}
	sort.Strings(out)
	return out
}

// TestFlowLinesSemantic checks the comparison itself: filters that split
// rules differently but allow the same traffic compare equal; a filter
// allowing one more port does not.
func TestFlowLinesSemantic(t *testing.T) {
	pr := func(first, last uint16) tailcfg.PortRange { return tailcfg.PortRange{First: first, Last: last} }
	merged := []tailcfg.FilterRule{{SrcIPs: []string{"100.64.0.0-100.64.0.9"}, DstPorts: []tailcfg.NetPortRange{{IP: "10.0.0.0/24", Ports: pr(80, 443)}}}}
	split := []tailcfg.FilterRule{
		{SrcIPs: []string{"100.64.0.0/29"}, DstPorts: []tailcfg.NetPortRange{{IP: "10.0.0.0/25", Ports: pr(80, 200)}, {IP: "10.0.0.128/25", Ports: pr(80, 200)}}},
		{SrcIPs: []string{"100.64.0.8", "100.64.0.9"}, DstPorts: []tailcfg.NetPortRange{{IP: "10.0.0.0/24", Ports: pr(80, 200)}}},
		{SrcIPs: []string{"100.64.0.0-100.64.0.9"}, DstPorts: []tailcfg.NetPortRange{{IP: "10.0.0.0/24", Ports: pr(201, 443)}}},
	}
	wider := []tailcfg.FilterRule{{SrcIPs: []string{"100.64.0.0-100.64.0.9"}, DstPorts: []tailcfg.NetPortRange{{IP: "10.0.0.0/24", Ports: pr(80, 444)}}}}
	same := func(a, b []tailcfg.FilterRule) bool {
		both := slices.Concat(a, b)
		return diffLines(flowLines(a, both), flowLines(b, both)) == ""
	}
	if !same(merged, split) {
		t.Error("split rules differ from the merged rule")
	}
	if same(merged, wider) {
		t.Error("a rule with one more port compares equal")
	}
}
