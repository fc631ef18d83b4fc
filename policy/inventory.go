package policy

import (
	"net/netip"
	"slices"
	"strings"

	"tailscale.com/tailcfg"

	"github.com/tailplane/tailplane/schema"
)

// TestInventory returns the nodes that `tests` and `sshTests` are evaluated
// against: the real nodes given (nil when no server state is at hand, as in
// lint), plus one stand-in node for every user and every tag that no real
// node represents yet. A test like `"src": "bob@example.com"` thus means
// "a device of bob's", whether or not bob has registered one, so a policy
// test gives the same answer in a pull request as on the server.
//
// Users are the declared users plus every login named in groups and
// tagOwners; tags are the tagOwners entries. Stand-in nodes get addresses
// from the tailnet's prefixes that no real node and no host alias uses, and
// IDs above the real ones, in sorted order, so the result is deterministic.
func TestInventory(t *schema.Tailnet, real []Node) []Node {
	nodes := slices.Clone(real)
	used := map[netip.Addr]bool{}
	var maxID tailcfg.NodeID
	hasUser, hasTag := map[string]bool{}, map[string]bool{}
	for _, n := range real {
		used[n.IPv4], used[n.IPv6] = true, true
		maxID = max(maxID, n.ID)
		if n.Tagged() {
			for _, tag := range n.Tags {
				hasTag[tag] = true
			}
		} else {
			hasUser[n.User] = true
		}
	}
	for _, h := range t.Policy.Hosts {
		if p, err := netip.ParsePrefix(h); err == nil {
			used[p.Addr()] = true
		} else if a, err := netip.ParseAddr(h); err == nil {
			used[a] = true
		}
	}

	logins := map[string]bool{}
	for login := range t.Users {
		logins[login] = true
	}
	for _, members := range t.Policy.Groups {
		addLogins(logins, members)
	}
	for _, owners := range t.Policy.TagOwners {
		addLogins(logins, owners)
	}

	s := t.Settings.WithDefaults()
	v4 := newAddrSource(s.IPv4, used)
	v6 := newAddrSource(s.IPv6, used)
	add := func(name, user string, tags []string) {
		maxID++
		nodes = append(nodes, Node{ID: maxID, Name: name, User: user, Tags: tags, IPv4: v4.next(), IPv6: v6.next()})
	}
	for _, login := range sortedKeys(logins) {
		if !hasUser[login] {
			add("test device of "+login, login, nil)
		}
	}
	for _, tag := range sortedKeys(t.Policy.TagOwners) {
		if !hasTag[tag] {
			add("test device tagged "+tag, "", []string{tag})
		}
	}
	return nodes
}

// addLogins adds the entries of members that are logins (not groups, tags
// or autogroups) to logins.
func addLogins(logins map[string]bool, members []string) {
	for _, m := range members {
		if strings.Contains(m, "@") && !strings.Contains(m, ":") {
			logins[m] = true
		}
	}
}

// addrSource hands out consecutive unused addresses of a prefix, skipping
// its network address and Tailscale's reserved service addresses.
type addrSource struct {
	prefix netip.Prefix
	cur    netip.Addr
	used   map[netip.Addr]bool
}

func newAddrSource(p netip.Prefix, used map[netip.Addr]bool) *addrSource {
	return &addrSource{prefix: p.Masked(), cur: p.Masked().Addr(), used: used}
}

// next returns the next free address, or the zero Addr when the prefix is exhausted.
func (s *addrSource) next() netip.Addr {
	for {
		s.cur = s.cur.Next()
		if !s.cur.IsValid() || !s.prefix.Contains(s.cur) {
			return netip.Addr{}
		}
		if !s.used[s.cur] && !schema.IsReservedIP(s.cur) {
			s.used[s.cur] = true
			return s.cur
		}
	}
}

// TestAssertions is the number of assertions in the policy's tests and
// sshTests: each accept/deny destination of a test, and each
// accept/check/deny user of an SSH test for each of its destinations.
func (p *Policy) TestAssertions() int {
	n := 0
	for _, t := range p.tests {
		n += len(t.Accept) + len(t.Deny)
	}
	for _, t := range p.sshTests {
		n += (len(t.Accept) + len(t.Check) + len(t.Deny)) * len(t.Dst)
	}
	return n
}

// Validate is everything lint and apply check of a policy: it compiles t's
// policy and, if that succeeds, warns about SSH "check" rules with tagged
// sources and runs its tests and sshTests against TestInventory(t, real).
// p is nil when the policy does not compile.
func Validate(t *schema.Tailnet, real []Node) (p *Policy, diags schema.Diagnostics) {
	p, diags = Compile(t)
	if p == nil || diags.HasErrors() {
		return nil, diags
	}
	diags = append(diags, p.sshCheckDiags()...)
	return p, append(diags, p.RunTests(TestInventory(t, real))...)
}
