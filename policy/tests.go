package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"go4.org/netipx"
	"tailscale.com/tailcfg"

	"github.com/tailplane/tailplane/schema"
)

// checkTests validates the syntax of tests and sshTests at compile time;
// RunTests evaluates them against an inventory.
func (c *compiler) checkTests(p *Policy) {
	for i, t := range p.tests {
		path := fmt.Sprintf("tests[%d]", i)
		c.checkTestSrc(p, path+".src", t.Src)
		if len(t.Accept) == 0 && len(t.Deny) == 0 {
			c.errf(path, `add "accept" or "deny" destinations`, "test has neither accept nor deny")
		}
		if _, err := parseProto(t.Proto); err != nil {
			c.errf(path+".proto", "", "%v", err)
		}
		for _, fl := range []fieldList{{"accept", t.Accept}, {"deny", t.Deny}} {
			field, list := fl.field, fl.list
			for j, d := range list {
				if _, _, err := p.parseTestDst(d); err != nil {
					c.errf(fmt.Sprintf("%s.%s[%d]", path, field, j), `write "host:port" with one port, such as "tag:db:5432"`, "%v", err)
				}
			}
		}
	}
	for i, t := range p.sshTests {
		path := fmt.Sprintf("sshTests[%d]", i)
		c.checkTestSrc(p, path+".src", t.Src)
		for j, d := range t.Dst {
			if err := p.checkSSHTestDst(d); err != nil {
				c.errf(fmt.Sprintf("%s.dst[%d]", path, j), "ssh test destinations are tags, users or IPv4 addresses of nodes", "%v", err)
			}
		}
		for _, fl := range []fieldList{{"accept", t.Accept}, {"check", t.Check}, {"deny", t.Deny}} {
			field, list := fl.field, fl.list
			for j, u := range list {
				if strings.TrimSpace(u) == "" {
					c.errf(fmt.Sprintf("%s.%s[%d]", path, field, j), "", "ssh test user must not be empty")
				}
			}
		}
	}
}

// checkTestSrc checks the src of a test or SSH test. Tailscale's docs:
// the src is "a user's email address, a group, a tag, or a host that maps
// to an IP address", and "sources ... must refer to specific entities and
// do not support * wildcards": no "*", no CIDR or range (nor a host alias
// of one), and none of the autogroups that are no identity (internet,
// self, danger-all).
func (c *compiler) checkTestSrc(p *Policy, path, src string) {
	const hint = "name the user, group, tag, host or single IP the test sends from"
	if strings.TrimSpace(src) == "" {
		c.errf(path, hint, "test src must be specified")
		return
	}
	a, err := p.sy.parseAlias(src)
	switch {
	case err != nil:
		c.errf(path, "", "test src: %v", err)
	case a.kind == aliasAll,
		a.kind == aliasAutogroup && (a.name == agInternet || a.name == agSelf || a.name == agDangerAll):
		c.errf(path, hint, "test src %q must be a specific user, group, tag or host, not a wildcard", src)
	case a.kind == aliasPrefixes && (len(a.prefixes) != 1 || !a.prefixes[0].IsSingleIP()):
		c.errf(path, hint, "test src %q must be a single address, not a range", src)
	}
}

// fieldList is one assertion list of a test with its field name; tests
// walk them in a fixed order so diagnostics come out in a stable order.
type fieldList struct {
	field string
	list  []string
}

func (p *Policy) checkSSHTestDst(d string) error {
	a, err := p.sy.parseAlias(d)
	if err != nil {
		return err
	}
	switch {
	case a.kind == aliasAutogroup && a.name == agInternet, a.kind == aliasAll:
		return fmt.Errorf("SSH tests dst contains disallowed element %q", d)
	case a.kind == aliasPrefixes && (len(a.prefixes) != 1 || !a.prefixes[0].IsSingleIP() || !a.prefixes[0].Addr().Is4()):
		return fmt.Errorf("SSH tests dst contains disallowed element %q", d)
	}
	return nil
}

// parseTestDst parses a test destination "alias:port" with exactly one
// port, 0-65535 (0 for ICMP, which has none). An IPv6 address is written
// in brackets, "[fd7a:115c:a1e0::1]:22", as Tailscale's docs require:
// unbracketed, "fd7a:115c:a1e0::1:22" is itself an IPv6 address.
func (p *Policy) parseTestDst(d string) (alias, uint16, error) {
	host, ports, err := splitAliasPorts(d)
	if err != nil {
		return alias{}, 0, err
	}
	if !strings.HasPrefix(d, "[") && isIPv6Literal(host) {
		return alias{}, 0, fmt.Errorf("dst %q: write IPv6 addresses in brackets, such as %q", d, "["+host+"]:"+ports)
	}
	a, err := p.sy.parseAlias(host)
	if err != nil {
		return alias{}, 0, fmt.Errorf("dst %q: %v", d, err)
	}
	port, err := parsePort(ports)
	if err != nil {
		return alias{}, 0, fmt.Errorf("dst %q: test ports are a single number in 0-65535", d)
	}
	return a, port, nil
}

// isIPv6Literal reports whether s is an IPv6 address or prefix.
func isIPv6Literal(s string) bool {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Is6()
	}
	if pf, err := netip.ParsePrefix(s); err == nil {
		return pf.Addr().Is6()
	}
	return false
}

// testEndpoint is one source or destination of a test: a node's addresses
// or a single address.
type testEndpoint struct {
	node *nodeState // nil for an address endpoint
	set  *netipx.IPSet
}

// RunTests evaluates the policy's tests and sshTests against nodes. It
// returns one error per failed assertion, with the field path of the
// assertion ("tests[2].accept[0]").
func (p *Policy) RunTests(nodes []Node) schema.Diagnostics {
	if len(p.tests) == 0 && len(p.sshTests) == 0 {
		return nil
	}
	r := p.Evaluate(nodes, Options{})
	var ds schema.Diagnostics
	fail := func(path, msg string) {
		ds = append(ds, p.src.Diag(path, msg, "fix the rules or the test"))
	}
	for i, t := range p.tests {
		path := fmt.Sprintf("tests[%d]", i)
		srcA, err := p.sy.parseAlias(t.Src)
		if err != nil {
			continue // reported by Compile
		}
		srcs := r.testEndpoints(srcA, nil)
		protos, _ := parseProto(t.Proto)
		if protos == nil {
			protos = []int{6, 17} // Tailscale's docs: "the test checks for either TCP or UDP access"
		}
		for _, fl := range []fieldList{{"accept", t.Accept}, {"deny", t.Deny}} {
			field, list := fl.field, fl.list
			want := field == "accept"
			for j, d := range list {
				dp := fmt.Sprintf("%s.%s[%d]", path, field, j)
				dstA, port, err := p.parseTestDst(d)
				if err != nil {
					continue
				}
				got, why := r.testAllows(srcs, srcA, dstA, port, protos, want)
				if why != "" {
					fail(dp, fmt.Sprintf("%s -> %s: %s", t.Src, d, why))
					continue
				}
				if got != want {
					fail(dp, fmt.Sprintf("%s -> %s: expected %s, got %s", t.Src, d, verdict(want), verdict(got)))
				}
			}
		}
	}
	for i, t := range p.sshTests {
		ds = append(ds, r.runSSHTest(fmt.Sprintf("sshTests[%d]", i), t)...)
	}
	return ds
}

func verdict(accept bool) string {
	if accept {
		return "accept"
	}
	return "deny"
}

// testEndpoints resolves a test alias to endpoints. self is the source
// endpoints, for an autogroup:self destination.
func (r *Result) testEndpoints(a alias, self []testEndpoint) []testEndpoint {
	var out []testEndpoint
	switch {
	case a.kind == aliasPrefixes:
		// An address of a node stands for that node.
		e := testEndpoint{set: a.set}
		if len(a.prefixes) == 1 && a.prefixes[0].IsSingleIP() {
			for _, s := range r.nodes {
				if s != nil && s.addrSet.Contains(a.prefixes[0].Addr()) {
					e.node = s
				}
			}
		}
		out = append(out, e)
	case a.kind == aliasAutogroup && a.name == agSelf:
		users := map[string]bool{}
		for _, e := range self {
			if e.node == nil || e.node.Tagged() {
				return nil
			}
			users[e.node.User] = true
		}
		for u := range users {
			r.byUser[u].each(func(i int) { out = append(out, testEndpoint{node: r.nodes[i], set: r.nodes[i].addrSet}) })
		}
	case a.kind == aliasAll || (a.kind == aliasAutogroup && a.name == agInternet):
		return nil
	default:
		r.nodesOf(a).each(func(i int) { out = append(out, testEndpoint{node: r.nodes[i], set: r.nodes[i].addrSet}) })
	}
	return out
}

// testAllows evaluates one assertion: with want (accept) it reports
// whether every source reaches every destination on port by one of
// protos; without (deny) whether any does. why is non-empty when the test
// cannot be evaluated.
func (r *Result) testAllows(srcs []testEndpoint, srcA, dstA alias, port uint16, protos []int, want bool) (bool, string) {
	if len(srcs) == 0 {
		return false, fmt.Sprintf("src %q matches no node", srcA.name)
	}
	if dstA.kind == aliasPrefixes && (len(dstA.prefixes) != 1 || !dstA.prefixes[0].IsSingleIP()) {
		return false, "destination must be a single address, not a range"
	}
	dsts := r.testEndpoints(dstA, srcs)
	if len(dsts) == 0 {
		return false, fmt.Sprintf("dst %q matches no node", dstA.name)
	}
	self := dstA.kind == aliasAutogroup && dstA.name == agSelf
	all, any := true, false
	for _, s := range srcs {
		for _, d := range dsts {
			if self && s.node.User != d.node.User {
				continue // autogroup:self pairs each source with its own user's nodes
			}
			if slices.ContainsFunc(protos, func(proto int) bool { return r.pairAllowed(s, d, port, proto) }) {
				any = true
			} else {
				all = false
			}
		}
	}
	// accept holds when every source reaches every destination; deny when
	// none does. A partly allowed pair set fails both, reported as the
	// opposite of what the test expected.
	if want {
		return all, ""
	}
	return any, ""
}

// pairAllowed reports whether some rule lets s reach d on port/proto,
// over IPv4 or IPv6 (each family where both ends have an address). ICMP
// goes wherever any rule lets the pair through, whatever its protocols
// and ports ("if traffic is allowed for a given pair of IP addresses,
// then ICMP will also be allowed", as tailscaled's filter does).
func (r *Result) pairAllowed(s, d testEndpoint, port uint16, proto int) bool {
	icmp := proto == 1 || proto == 58
	for _, v4 := range []bool{true, false} {
		sa, da := familyAddr(s.set, v4), familyAddr(d.set, v4)
		if !sa.IsValid() || !da.IsValid() {
			continue
		}
		for _, er := range r.rules {
			if er.caps != nil || !er.srcSet.Contains(sa) || (!icmp && !protoMatches(er.protos, proto)) {
				continue
			}
			for _, ds := range er.dsts {
				if !icmp && !slices.ContainsFunc(ds.ports, func(pr tailcfg.PortRange) bool { return pr.First <= port && port <= pr.Last }) {
					continue
				}
				if r.dstCovers(ds.a, s, d, da) {
					return true
				}
			}
		}
	}
	return false
}

// familyAddr returns the first address of set in the IPv4 (or IPv6) family.
func familyAddr(set *netipx.IPSet, v4 bool) netip.Addr {
	for _, rg := range set.Ranges() {
		if rg.From().Is4() == v4 {
			return rg.From()
		}
	}
	return netip.Addr{}
}

// dstCovers reports whether destination alias a covers address da of
// endpoint d for source s.
func (r *Result) dstCovers(a alias, s, d testEndpoint, da netip.Addr) bool {
	switch {
	case a.kind == aliasAll:
		return true
	case a.kind == aliasPrefixes:
		return a.set.Contains(da)
	case a.kind == aliasAutogroup && a.name == agInternet:
		return false
	case a.kind == aliasAutogroup && a.name == agSelf:
		return s.node != nil && d.node != nil && !s.node.Tagged() && !d.node.Tagged() && s.node.User == d.node.User
	}
	if d.node != nil {
		return r.nodesOf(a).has(d.node.idx)
	}
	covered := false
	r.nodesOf(a).each(func(i int) { covered = covered || r.nodes[i].addrSet.Contains(da) })
	return covered
}

func protoMatches(protos []int, p int) bool {
	if protos == nil {
		return p == 6 || p == 17 || p == 1 || p == 58
	}
	return slices.Contains(protos, p)
}

// runSSHTest evaluates one sshTests entry against the nodes' SSH policies.
func (r *Result) runSSHTest(path string, t schema.SSHTest) schema.Diagnostics {
	var ds schema.Diagnostics
	srcA, err := r.p.sy.parseAlias(t.Src)
	if err != nil {
		return nil
	}
	srcs := r.testEndpoints(srcA, nil)
	for j, d := range t.Dst {
		if r.p.checkSSHTestDst(d) != nil {
			continue
		}
		dstA, _ := r.p.sy.parseAlias(d)
		dsts := r.testEndpoints(dstA, srcs)
		for _, fl := range []fieldList{{"accept", t.Accept}, {"check", t.Check}, {"deny", t.Deny}} {
			want := fl.field
			for k, u := range fl.list {
				up := fmt.Sprintf("%s.%s[%d]", path, want, k)
				if strings.TrimSpace(u) == "" {
					continue
				}
				got := r.sshVerdict(srcs, dsts, u)
				if len(srcs) == 0 || len(dsts) == 0 {
					got = "no matching node"
				}
				if got != want {
					ds = append(ds, r.p.src.Diag(up, fmt.Sprintf("%s -> %s (ssh user %q): expected %s, got %s", t.Src, t.Dst[j], u, want, got), "fix the ssh rules or the test"))
				}
			}
		}
	}
	return ds
}

// sshVerdict returns "accept", "check" or "deny" when every source gets
// that outcome for user u on every destination, else the outcomes seen,
// such as "accept for some, deny for others".
func (r *Result) sshVerdict(srcs, dsts []testEndpoint, u string) string {
	verdicts := map[string]bool{}
	for _, d := range dsts {
		if d.node == nil {
			verdicts["deny"] = true
			continue
		}
		pol := r.sshPolicy(d.node)
		for _, s := range srcs {
			verdicts[sshDecide(pol, s.set, u)] = true
		}
	}
	var seen []string
	for _, v := range []string{"accept", "check", "deny"} {
		if verdicts[v] {
			seen = append(seen, v)
		}
	}
	switch len(seen) {
	case 0:
		return "deny"
	case 1:
		return seen[0]
	}
	return seen[0] + " for some, " + strings.Join(seen[1:], " or ") + " for others"
}

// sshDecide applies tailscaled's first-match rule evaluation for a
// connection from an address in set as SSH user u.
func sshDecide(pol *tailcfg.SSHPolicy, set *netipx.IPSet, u string) string {
	if pol == nil {
		return "deny"
	}
	for _, rule := range pol.Rules {
		matched := false
		for _, p := range rule.Principals {
			if a, err := netip.ParseAddr(p.NodeIP); p.Any || err == nil && set.Contains(a) {
				matched = true
				break
			}
		}
		if !matched {
			continue
		}
		local, ok := rule.SSHUsers[u]
		if !ok {
			local = rule.SSHUsers["*"]
		}
		if local == "" {
			continue
		}
		switch {
		case rule.Action.Reject:
			return "deny"
		case rule.Action.HoldAndDelegate != "":
			return "check"
		case rule.Action.Accept:
			return "accept"
		}
	}
	return "deny"
}
