package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"go4.org/netipx"
	"tailscale.com/tailcfg"

	"github.com/tailplane/tailplane/schema"
)

// Policy is a compiled, validated policy: every alias parsed once, ready to
// be evaluated against a node inventory. A Policy is immutable and safe for
// concurrent use.
type Policy struct {
	src   *schema.Source
	users map[string]schema.User // by login
	sy    *symbols

	rules     []*rule
	ssh       []*sshRule
	nodeAttrs []*nodeAttr
	autoRoute []autoRoute
	autoExit  []alias
	tagOwners map[string][]alias // tagOwners entries parsed, by tag; see MayOwnTag

	baseCaps    tailcfg.NodeCapMap // what every node's CapMap starts with (baseCaps); nil when none; read-only
	disableIPv4 bool               // the top-level disableIPv4: every node as with the disable-ipv4 attribute

	tests    []schema.ACLTest
	sshTests []schema.SSHTest
}

// rule is one compiled ACL, or one protocol group or app of a grant.
type rule struct {
	path   string // "acls[3]" or "grants[1]"
	srcs   []alias
	dsts   []dstSpec
	protos []int              // nil means TCP, UDP and ICMP
	caps   tailcfg.PeerCapMap // non-nil for app grants: the rule grants capabilities, not packets
	via    []alias            // grants only: the routers that carry the traffic
}

// dstSpec is one destination of a rule with the ports it opens.
type dstSpec struct {
	a     alias
	ports []tailcfg.PortRange
}

// nodeAttr is one compiled entry of nodeAttrs.
type nodeAttr struct {
	targets []alias
	caps    tailcfg.NodeCapMap
}

// autoRoute is one entry of autoApprovers.routes.
type autoRoute struct {
	prefix    netip.Prefix
	approvers []alias
	path      string // the entry's field path, `autoApprovers.routes["10.0.0.0/8"]`
}

// compiler carries the state of one Compile call.
type compiler struct {
	t     *schema.Tailnet
	src   *schema.Source
	diags schema.Diagnostics
}

func (c *compiler) errf(path, hint, format string, args ...any) {
	c.diags = append(c.diags, c.src.Diag(path, fmt.Sprintf(format, args...), hint))
}

// Compile validates t's policy and compiles it. It is a pure function of the
// config: nodes come in later, through Evaluate. When the returned
// diagnostics contain errors the policy must not be used; the Policy is then
// still returned (possibly partial) so that callers can report more.
func Compile(t *schema.Tailnet) (*Policy, schema.Diagnostics) {
	c := &compiler{t: t, src: t.Source}
	p := &Policy{src: t.Source, users: t.Users}
	pol := &t.Policy
	p.sy, p.tagOwners = c.symbols(pol)
	for i, a := range pol.ACLs {
		if r := c.acl(p.sy, fmt.Sprintf("acls[%d]", i), a); r != nil {
			p.rules = append(p.rules, r)
		}
	}
	if pol.ACLs == nil && pol.Grants == nil {
		// Tailscale's default policy: a policy without acls and grants
		// allows everything. An explicit empty list denies everything.
		p.rules = append(p.rules, &rule{path: "acls", srcs: []alias{{kind: aliasAll, name: "*"}},
			dsts: []dstSpec{{a: alias{kind: aliasAll, name: "*"}, ports: []tailcfg.PortRange{portAny}}}})
	}
	for i, g := range pol.Grants {
		p.rules = append(p.rules, c.grant(p.sy, fmt.Sprintf("grants[%d]", i), g)...)
	}
	for i, r := range pol.SSH {
		if sr := c.sshRule(p.sy, fmt.Sprintf("ssh[%d]", i), r); sr != nil {
			p.ssh = append(p.ssh, sr)
		}
	}
	for i, na := range pol.NodeAttrs {
		if a := c.nodeAttr(p.sy, fmt.Sprintf("nodeAttrs[%d]", i), na); a != nil {
			p.nodeAttrs = append(p.nodeAttrs, a)
		}
	}
	p.autoRoute, p.autoExit = c.autoApprovers(p.sy, pol.AutoApprovers)
	p.baseCaps = baseCaps(t.Settings, pol.RandomizeClientPort)
	p.disableIPv4 = pol.DisableIPv4
	p.tests = pol.Tests
	p.sshTests = pol.SSHTests
	c.checkTests(p)
	c.checkUsers(pol)
	return p, c.diags
}

// symbols validates groups, tagOwners, hosts and ipsets and returns them,
// with the owners of each tag parsed.
func (c *compiler) symbols(pol *schema.Policy) (*symbols, map[string][]alias) {
	sy := &symbols{
		groups:    map[string][]string{},
		hosts:     map[string]netip.Prefix{},
		tagOwners: map[string][]string{},
		ipsets:    map[string]*netipx.IPSet{},
	}
	for _, name := range sortedKeys(pol.Groups) {
		path := fmt.Sprintf("groups[%q]", name)
		if err := checkGroupName(name); err != nil {
			c.errf(path, "", "%v", err)
			continue
		}
		var members []string
		for i, m := range pol.Groups[name] {
			mp := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case strings.HasPrefix(m, "group:"):
				c.errf(mp, "list the group's users instead", "%q: group members cannot be recursive", m)
			case strings.HasPrefix(m, "tag:") || strings.HasPrefix(m, "autogroup:") || m == "*":
				c.errf(mp, "groups contain user logins only", "%q: invalid group member", m)
			default:
				if err := checkLogin(m); err != nil {
					c.errf(mp, "write the user's login, such as alice@example.com", "%v", err)
					continue
				}
				members = append(members, m)
			}
		}
		sy.groups[name] = members
	}
	for _, name := range sortedKeys(pol.Hosts) {
		path := fmt.Sprintf("hosts[%q]", name)
		v := pol.Hosts[name]
		if name == "" || strings.ContainsAny(name, ":@ *") {
			c.errf(path, "", "host name %q is not valid", name)
			continue
		}
		ps, err := parseAddrs(v)
		if err != nil || len(ps) != 1 || strings.Contains(v, "-") {
			c.errf(path, "a host is one IP address or CIDR prefix", "host %q: invalid address %q", name, v)
			continue
		}
		sy.hosts[name] = ps[0]
	}
	for _, name := range sortedKeys(pol.IPSets) {
		c.ipset(sy, pol.IPSets, name, map[string]bool{})
	}
	// Declare every tag first so owners may name tags declared later.
	for name := range pol.TagOwners {
		sy.tagOwners[name] = nil
	}
	owners := make(map[string][]alias, len(pol.TagOwners))
	for _, name := range sortedKeys(pol.TagOwners) {
		path := fmt.Sprintf("tagOwners[%q]", name)
		if err := checkTagName(name); err != nil {
			c.errf(path, "", "%v", err)
			continue
		}
		as := make([]alias, 0, len(pol.TagOwners[name]))
		for i, o := range pol.TagOwners[name] {
			if a, ok := c.tagOwner(sy, fmt.Sprintf("%s[%d]", path, i), o); ok {
				as = append(as, a)
			}
		}
		owners[name] = as
		sy.tagOwners[name] = pol.TagOwners[name]
	}
	return sy, owners
}

// tagOwner parses o, an owner of a tag in tagOwners.
func (c *compiler) tagOwner(sy *symbols, path, o string) (alias, bool) {
	switch {
	case strings.HasPrefix(o, "tag:"), strings.HasPrefix(o, "group:"):
		a, err := sy.parseAlias(o)
		if err != nil {
			c.errf(path, "", "%v", err)
			return a, false
		}
		return a, true
	case o == agAdmin || o == agMember || o == agOwner:
		return alias{kind: aliasAutogroup, name: o}, true
	case strings.HasPrefix(o, "autogroup:") || o == "*":
		c.errf(path, "tag owners are users, groups, tags or autogroup:admin/member", "%q cannot own tags", o)
		return alias{}, false
	}
	if err := checkLogin(o); err != nil {
		c.errf(path, "", "%v", err)
		return alias{}, false
	}
	return alias{kind: aliasUser, name: o}, true
}

// ipset resolves the ipset name (and the ipsets it names, first) into
// sy.ipsets. Entries are "add <target>", "remove <target>" or a bare target
// (an add), applied in order; targets are IPs, CIDRs, ranges, hosts,
// autogroup:internet and other ipsets. visiting detects cycles.
func (c *compiler) ipset(sy *symbols, defs map[string][]string, name string, visiting map[string]bool) *netipx.IPSet {
	if s, ok := sy.ipsets[name]; ok {
		return s
	}
	path := fmt.Sprintf("ipsets[%q]", name)
	empty, _ := (&netipx.IPSetBuilder{}).IPSet()
	if !strings.HasPrefix(name, "ipset:") || len(name) == len("ipset:") {
		c.errf(path, "", "ipset name %q must start with 'ipset:'", name)
		sy.ipsets[name] = empty
		return empty
	}
	if visiting[name] {
		return nil
	}
	visiting[name] = true
	var b netipx.IPSetBuilder
	for i, e := range defs[name] {
		ep := fmt.Sprintf("%s[%d]", path, i)
		op, target, ok := strings.Cut(strings.TrimSpace(e), " ")
		if !ok {
			op, target = "add", op
		}
		target = strings.TrimSpace(target)
		if op != "add" && op != "remove" {
			c.errf(ep, `write "add <target>" or "remove <target>"`, "ipset operation %q is not add or remove", op)
			continue
		}
		var set *netipx.IPSet
		switch {
		case target == agInternet:
			var ib netipx.IPSetBuilder
			for _, p := range internetPrefixes {
				ib.AddPrefix(p)
			}
			set, _ = ib.IPSet()
		case strings.HasPrefix(target, "ipset:"):
			if _, ok := defs[target]; !ok {
				c.errf(ep, "", "ipset %q is not defined", target)
				continue
			}
			if set = c.ipset(sy, defs, target, visiting); set == nil {
				c.errf(ep, "ipsets must not refer to themselves", "ipset %q refers back to %q", target, name)
				continue
			}
		default:
			ps, err := parseAddrs(target)
			if p, ok := sy.hosts[target]; ok {
				ps, err = []netip.Prefix{p}, nil
			}
			if err != nil {
				c.errf(ep, "ipsets hold IPs, CIDRs, ranges, hosts, autogroup:internet and other ipsets", "%v", err)
				continue
			}
			set = prefixAlias(target, ps).set
		}
		if op == "add" {
			b.AddSet(set)
		} else {
			b.RemoveSet(set)
		}
	}
	delete(visiting, name)
	s, _ := b.IPSet()
	sy.ipsets[name] = s
	return s
}

// srcAlias parses a rule source.
func (c *compiler) srcAlias(sy *symbols, path, s string, grant bool) (alias, bool) {
	a, err := sy.parseAlias(s)
	if err != nil {
		c.errf(path, "", "src=%v", err)
		return a, false
	}
	if !c.checkDomain(path, a) {
		return a, false
	}
	if a.kind == aliasAutogroup {
		switch a.name {
		case agMember, agTagged, agAdmin, agOwner, "autogroup:network-admin", "autogroup:it-admin",
			"autogroup:billing-admin", "autogroup:auditor", "autogroup:shared":
		case agDangerAll:
		case agSelf:
			c.errf(path, "use autogroup:self as a destination", "autogroup:self can only be used as a destination")
			return a, false
		default:
			c.errf(path, "", "%q cannot be used as a source", a.name)
			return a, false
		}
	}
	return a, true
}

// checkDomain rejects user:*@domain aliases for domains outside the tailnet.
func (c *compiler) checkDomain(path string, a alias) bool {
	if a.kind != aliasDomain || c.tailnetDomain(a.name) {
		return true
	}
	c.errf(path, "use the login domain of the tailnet's owner", "%s is not associated with this Tailnet and cannot be used in user:*@<domain> expressions", a.name)
	return false
}

// dstAlias parses a rule destination (without ports).
func (c *compiler) dstAlias(sy *symbols, path, s string, grant bool) (alias, bool) {
	a, err := sy.parseAlias(s)
	if err != nil {
		c.errf(path, "", "dst=%q: %v", s, err)
		return a, false
	}
	if !c.checkDomain(path, a) {
		return a, false
	}
	switch {
	case a.kind == aliasAutogroup && a.name == agDangerAll:
		c.errf(path, `use "*"`, "cannot use autogroup:danger-all as a dst")
		return a, false
	case a.kind == aliasAutogroup && a.name == agNonroot:
		c.errf(path, "", "%q cannot be used as a destination", a.name)
		return a, false
	case a.kind == aliasPrefixes && grant && isAllAddrs(a):
		c.errf(path, `write "*" or "autogroup:internet"`, "dst %q: to allow all IP addresses, use \"*\" or \"autogroup:internet\"", s)
		return a, false
	}
	return a, true
}

func isAllAddrs(a alias) bool {
	for _, p := range a.prefixes {
		if p.Bits() == 0 {
			return true
		}
	}
	return false
}

// checkSelf enforces that autogroup:self destinations only pair with
// sources that are users: users, groups, autogroup:member.
func (c *compiler) checkSelf(path string, srcs []alias, dsts []alias, allowStar bool) {
	hasSelf := slices.ContainsFunc(dsts, func(a alias) bool { return a.kind == aliasAutogroup && a.name == agSelf })
	if !hasSelf {
		return
	}
	for _, s := range srcs {
		ok := s.kind == aliasUser || s.kind == aliasGroup || (allowStar && s.kind == aliasAll) ||
			(s.kind == aliasAutogroup && (s.name == agMember || s.name == agAdmin || s.name == agOwner))
		if !ok {
			c.errf(path, "autogroup:self pairs with users, groups and autogroup:member sources",
				"autogroup:self can only be used with users, groups, or supported autogroups")
			return
		}
	}
}

// acl compiles one entry of acls.
func (c *compiler) acl(sy *symbols, path string, a schema.ACL) *rule {
	bad := false
	if strings.TrimSpace(a.Action) != "accept" {
		c.errf(path+".action", `the only ACL action is "accept"`, "action %q is not valid", a.Action)
		bad = true
	}
	srcField, srcs := "src", a.Src
	if len(srcs) == 0 && len(a.Users) > 0 {
		srcField, srcs = "users", a.Users
	}
	dstField, dsts := "dst", a.Dst
	if len(dsts) == 0 && len(a.Ports) > 0 {
		dstField, dsts = "ports", a.Ports
	}
	r := &rule{path: path}
	protos, err := parseProto(a.Proto)
	if err != nil {
		c.errf(path+".proto", "use tcp, udp, icmp or a protocol number", "%v", err)
		bad = true
	}
	r.protos = protos
	for i, s := range srcs {
		if al, ok := c.srcAlias(sy, fmt.Sprintf("%s.%s[%d]", path, srcField, i), s, false); ok {
			r.srcs = append(r.srcs, al)
		} else {
			bad = true
		}
	}
	var dstAliases []alias
	for i, d := range dsts {
		dp := fmt.Sprintf("%s.%s[%d]", path, dstField, i)
		host, ports, err := splitAliasPorts(d)
		if err != nil {
			c.errf(dp, "", "%v", err)
			bad = true
			continue
		}
		// A bad port list usually means a forgotten port ("tag:web"),
		// so report it alone.
		pr, perr := parsePorts(ports)
		if perr != nil {
			c.errf(dp, `ports are "*", a number, a range "80-443" or a list "22,80"`, "dst=%q: %v", d, perr)
			bad = true
			continue
		}
		al, ok := c.dstAlias(sy, dp, host, false)
		if !ok {
			bad = true
			continue
		}
		dstAliases = append(dstAliases, al)
		r.dsts = append(r.dsts, dstSpec{a: al, ports: pr})
	}
	c.checkSelf(path, r.srcs, dstAliases, true)
	if bad {
		return nil
	}
	r.srcs = c.posture(path, a.SrcPosture, r.srcs)
	return r
}

// posture handles srcPosture, which tailplane cannot evaluate (it has no
// device posture data): the rule then matches no source, failing closed,
// and a warning says so.
func (c *compiler) posture(path string, posture []string, srcs []alias) []alias {
	if len(posture) == 0 {
		return srcs
	}
	c.diags = append(c.diags, c.src.Warn(path+".srcPosture",
		"device posture conditions are not supported; this rule matches no source",
		"remove srcPosture, or express the condition with tags"))
	return nil
}

// grant compiles one entry of grants into one rule per protocol group of
// its "ip" list and one rule for its "app" capabilities.
func (c *compiler) grant(sy *symbols, path string, g schema.Grant) []*rule {
	bad := false
	var srcs, dsts, via []alias
	for i, s := range g.Src {
		if al, ok := c.srcAlias(sy, fmt.Sprintf("%s.src[%d]", path, i), s, true); ok {
			srcs = append(srcs, al)
		} else {
			bad = true
		}
	}
	hasInternet := false
	for i, d := range g.Dst {
		if al, ok := c.dstAlias(sy, fmt.Sprintf("%s.dst[%d]", path, i), d, true); ok {
			dsts = append(dsts, al)
			hasInternet = hasInternet || al.name == agInternet
		} else {
			bad = true
		}
	}
	for i, v := range g.Via {
		vp := fmt.Sprintf("%s.via[%d]", path, i)
		al, err := sy.parseAlias(v)
		if err != nil {
			c.errf(vp, "", "via=%v", err)
			bad = true
			continue
		}
		if al.kind != aliasTag {
			c.errf(vp, "via names the tags of the routers to use", "via %q must be a tag", v)
			bad = true
			continue
		}
		via = append(via, al)
	}
	if len(g.IP) == 0 && len(g.App) == 0 {
		c.errf(path, `add "ip": ["*"] or an "app" capability`, "ip and app can not both be empty")
		return nil
	}
	c.checkSelf(path, srcs, dsts, false)
	srcs = c.posture(path, g.SrcPosture, srcs)
	// Group the ip entries by protocol, keeping first-seen order.
	var groups []*rule
	byProto := map[string]*rule{}
	for i, s := range g.IP {
		pp, err := parseGrantIP(s)
		if err != nil {
			c.errf(fmt.Sprintf("%s.ip[%d]", path, i), `write "*", "443", "tcp:443" or "udp:53"`, "%v", err)
			bad = true
			continue
		}
		key := fmt.Sprint(pp.protos)
		r := byProto[key]
		if r == nil {
			r = &rule{path: path, srcs: srcs, protos: pp.protos, via: via}
			byProto[key] = r
			groups = append(groups, r)
		}
		for _, d := range dsts {
			r.dsts = append(r.dsts, dstSpec{a: d, ports: pp.ports})
		}
	}
	if len(g.App) > 0 {
		if hasInternet {
			c.errf(path+".app", "app capabilities go to tailnet nodes", "cannot use app grants with autogroup:internet")
			bad = true
		}
		caps := tailcfg.PeerCapMap{}
		for _, name := range sortedKeys(g.App) {
			ap := fmt.Sprintf("%s.app[%q]", path, name)
			if err := checkCapName(name); err != nil {
				c.errf(ap, "capability names look like example.com/cap/name", "%v", err)
				bad = true
				continue
			}
			vals := make([]tailcfg.RawMessage, 0, len(g.App[name]))
			for _, v := range g.App[name] {
				vals = append(vals, tailcfg.RawMessage(compactJSON(v)))
			}
			caps[tailcfg.PeerCapability(name)] = vals
		}
		r := &rule{path: path, srcs: srcs, caps: caps, via: via}
		for _, d := range dsts {
			r.dsts = append(r.dsts, dstSpec{a: d})
		}
		groups = append(groups, r)
		groups = append(groups, companionRules(path, g.App, srcs, dsts)...)
	}
	if bad {
		return nil
	}
	return groups
}

// companionRules returns, for the capabilities of app that have a
// companion (companionCaps), the rules granting it the other way round:
// from the grant's destinations to its sources, so that each source learns
// which destinations offer the capability (a Taildrive client lists as
// remotes the peers that grant it drive-sharer). For autogroup:self
// destinations, a user's own devices grant it to each other.
func companionRules(path string, app map[string][]json.RawMessage, srcs, dsts []alias) []*rule {
	var out []*rule
	for _, name := range sortedKeys(app) {
		companion, ok := companionCaps[name]
		if !ok {
			continue
		}
		caps := tailcfg.PeerCapMap{tailcfg.PeerCapability(companion): nil}
		back := &rule{path: path, caps: caps}
		self := &rule{path: path, caps: caps, srcs: srcs}
		for _, d := range dsts {
			if d.kind == aliasAutogroup && d.name == agSelf {
				self.dsts = append(self.dsts, dstSpec{a: d})
				continue
			}
			back.srcs = append(back.srcs, d)
		}
		if len(back.srcs) > 0 {
			for _, s := range srcs {
				back.dsts = append(back.dsts, dstSpec{a: s})
			}
			out = append(out, back)
		}
		if len(self.dsts) > 0 {
			out = append(out, self)
		}
	}
	return out
}

// checkCapName checks an app capability name: {domain}/{path}, not in tailscale.com
// except for the capabilities Tailscale documents for use in grants.
func checkCapName(name string) error {
	n := name
	domain, rest, ok := strings.Cut(n, "/")
	if !ok || domain == "" || rest == "" || !strings.Contains(domain, ".") || strings.Contains(domain, ":") {
		return fmt.Errorf("capability name must have the form {domain}/{path}")
	}
	if domain == "tailscale.com" && !grantableTailscaleCaps[n] {
		return fmt.Errorf("capability name must not be in the tailscale.com domain")
	}
	return nil
}

// companionCaps maps a grantable capability to the one Tailscale grants in
// the reverse direction alongside it.
var companionCaps = map[string]string{
	"tailscale.com/cap/drive": "tailscale.com/cap/drive-sharer",
	"tailscale.com/cap/relay": "tailscale.com/cap/relay-target",
}

// grantableTailscaleCaps are tailscale.com capabilities that policies may grant.
var grantableTailscaleCaps = map[string]bool{
	"tailscale.com/cap/webui":        true,
	"tailscale.com/cap/drive":        true,
	"tailscale.com/cap/kubernetes":   true,
	"tailscale.com/cap/relay":        true,
	"tailscale.com/cap/tsidp":        true,
	"tailscale.com/cap/funnel-ports": true,
}

// compactJSON strips insignificant whitespace from a capability value,
// keeping key order and numbers exactly as written.
func compactJSON(m json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, m); err != nil {
		return string(m)
	}
	return b.String()
}

// nodeAttr compiles one entry of nodeAttrs.
func (c *compiler) nodeAttr(sy *symbols, path string, na schema.NodeAttr) *nodeAttr {
	out := &nodeAttr{caps: tailcfg.NodeCapMap{}}
	bad := false
	for i, t := range na.Target {
		tp := fmt.Sprintf("%s.target[%d]", path, i)
		a, err := sy.parseAlias(t)
		if err != nil {
			c.errf(tp, "", "%v", err)
			bad = true
			continue
		}
		out.targets = append(out.targets, a)
	}
	for i, at := range na.Attr {
		if at == "" {
			c.errf(fmt.Sprintf("%s.attr[%d]", path, i), "", "attribute must not be empty")
			bad = true
			continue
		}
		out.caps[tailcfg.NodeCapability(at)] = nil
	}
	for _, name := range sortedKeys(na.App) {
		vals := make([]tailcfg.RawMessage, 0, len(na.App[name]))
		for _, v := range na.App[name] {
			vals = append(vals, tailcfg.RawMessage(compactJSON(v)))
		}
		out.caps[tailcfg.NodeCapability(name)] = vals
	}
	for i, s := range na.IPPool {
		pp := fmt.Sprintf("%s.ipPool[%d]", path, i)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			c.errf(pp, "", "IPPool(%s): invalid prefix", s)
			bad = true
			continue
		}
		if quad100.Overlaps(p) || !(schema.DefaultIPv4.Contains(p.Addr()) || schema.DefaultIPv6.Contains(p.Addr())) {
			c.errf(pp, "pick a range inside 100.64.0.0/10 away from 100.100.100.0/24", "IPPool(%s): network within reserved range", s)
			bad = true
		}
	}
	if bad {
		return nil
	}
	return out
}

var quad100 = netip.MustParsePrefix("100.100.100.0/24")

// autoApprovers compiles autoApprovers.
func (c *compiler) autoApprovers(sy *symbols, aa schema.AutoApprovers) ([]autoRoute, []alias) {
	var routes []autoRoute
	for _, k := range sortedKeys(aa.Routes) {
		path := fmt.Sprintf("autoApprovers.routes[%q]", k)
		var pfx netip.Prefix
		if p, ok := sy.hosts[k]; ok {
			pfx = p
		} else {
			p, err := netip.ParsePrefix(k)
			if err != nil {
				c.errf(path, "keys are CIDR prefixes such as 10.0.0.0/8", "route %q is not a valid prefix", k)
				continue
			}
			pfx = p.Masked()
		}
		r := autoRoute{prefix: pfx, path: path}
		for i, s := range aa.Routes[k] {
			if a, ok := c.approver(sy, fmt.Sprintf("%s[%d]", path, i), s); ok {
				r.approvers = append(r.approvers, a)
			}
		}
		routes = append(routes, r)
	}
	var exit []alias
	for i, s := range aa.ExitNode {
		if a, ok := c.approver(sy, fmt.Sprintf("autoApprovers.exitNode[%d]", i), s); ok {
			exit = append(exit, a)
		}
	}
	return routes, exit
}

func (c *compiler) approver(sy *symbols, path, s string) (alias, bool) {
	a, err := sy.parseAlias(s)
	if err != nil {
		c.errf(path, "", "%v", err)
		return a, false
	}
	if a.kind == aliasPrefixes || a.kind == aliasAll || (a.kind == aliasAutogroup && a.name != agMember && a.name != agTagged && a.name != agAdmin && a.name != agOwner) {
		c.errf(path, "approvers are users, groups, tags or autogroup:member/tagged", "%q cannot approve routes", s)
		return a, false
	}
	return a, true
}

// parseDuration parses a checkPeriod: a Go duration or "always".
func parseDuration(s string) (time.Duration, error) {
	if s == "always" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return d, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
