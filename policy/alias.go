package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"

	"go4.org/netipx"
)

// aliasKind says what a policy alias ("group:eng", "tag:web", "10.0.0.0/8", ...) names.
type aliasKind int

const (
	aliasAll       aliasKind = iota // "*"
	aliasUser                       // "alice@example.com"
	aliasGroup                      // "group:eng"
	aliasTag                        // "tag:web"
	aliasPrefixes                   // an IP, CIDR, range, host or ipset: a fixed address set
	aliasAutogroup                  // "autogroup:member", ...
	aliasDomain                     // "user:*@example.com": every user of a login domain
)

// Autogroup names understood by the engine.
const (
	agMember    = "autogroup:member"
	agTagged    = "autogroup:tagged"
	agSelf      = "autogroup:self"
	agInternet  = "autogroup:internet"
	agAdmin     = "autogroup:admin"
	agOwner     = "autogroup:owner"
	agDangerAll = "autogroup:danger-all"
	agNonroot   = "autogroup:nonroot"
)

// knownAutogroups lists every autogroup the engine accepts somewhere.
// The roles tailplane does not have (network-admin, it-admin,
// billing-admin, auditor) and autogroup:shared are valid but match no
// node: tailplane's users are owners, admins or members, and nothing is
// shared in from other tailnets.
var knownAutogroups = map[string]bool{
	agMember: true, agTagged: true, agSelf: true, agInternet: true,
	agAdmin: true, agOwner: true, agDangerAll: true, agNonroot: true,
	"autogroup:network-admin": true, "autogroup:it-admin": true,
	"autogroup:billing-admin": true, "autogroup:auditor": true, "autogroup:shared": true,
}

// alias is one parsed and validated policy alias.
type alias struct {
	kind aliasKind
	name string // as written: login, "group:x", "tag:x", "autogroup:x", host or ipset name, or IP text
	// prefixes is the fixed address set of an aliasPrefixes alias, as
	// written (emitted in DstPorts), and set is the same as an IP set.
	prefixes []netip.Prefix
	set      *netipx.IPSet
}

func (a alias) String() string { return a.name }

// symbols is what alias parsing needs from the policy: the declared names.
type symbols struct {
	groups    map[string][]string
	hosts     map[string]netip.Prefix
	tagOwners map[string][]string
	ipsets    map[string]*netipx.IPSet
}

// parseAlias parses s as a source or destination alias (without ports). It
// checks that groups, tags, hosts and ipsets are declared.
func (sy *symbols) parseAlias(s string) (alias, error) {
	switch {
	case s == "":
		return alias{}, fmt.Errorf("empty alias")
	case s == "*":
		return alias{kind: aliasAll, name: s}, nil
	case strings.HasPrefix(s, "group:"):
		if _, ok := sy.groups[s]; !ok {
			return alias{}, fmt.Errorf("group %q is not defined", s)
		}
		return alias{kind: aliasGroup, name: s}, nil
	case strings.HasPrefix(s, "tag:"):
		if _, ok := sy.tagOwners[s]; !ok {
			return alias{}, fmt.Errorf("tag not found: %q", s)
		}
		return alias{kind: aliasTag, name: s}, nil
	case strings.HasPrefix(s, "autogroup:"):
		if !knownAutogroups[s] {
			return alias{}, fmt.Errorf("autogroup %q is not valid", s)
		}
		return alias{kind: aliasAutogroup, name: s}, nil
	case strings.HasPrefix(s, "ipset:"):
		set, ok := sy.ipsets[s]
		if !ok {
			return alias{}, fmt.Errorf("ipset %q is not defined", s)
		}
		return alias{kind: aliasPrefixes, name: s, prefixes: set.Prefixes(), set: set}, nil
	case strings.HasPrefix(s, "user:*@"):
		domain := s[len("user:*@"):]
		if domain == "" || strings.ContainsAny(domain, "@*: ") {
			return alias{}, fmt.Errorf("%q: write user:*@<domain>", s)
		}
		return alias{kind: aliasDomain, name: domain}, nil
	case strings.Contains(s, "@"):
		if err := checkLogin(s); err != nil {
			return alias{}, err
		}
		return alias{kind: aliasUser, name: s}, nil
	}
	if p, ok := sy.hosts[s]; ok {
		return prefixAlias(s, []netip.Prefix{p}), nil
	}
	ps, err := parseAddrs(s)
	if err != nil {
		if strings.ContainsAny(s, ".:/") || isDigits(s) {
			return alias{}, err
		}
		return alias{}, fmt.Errorf("host %q is not defined in hosts", s)
	}
	return prefixAlias(s, ps), nil
}

func prefixAlias(name string, ps []netip.Prefix) alias {
	var b netipx.IPSetBuilder
	for _, p := range ps {
		b.AddPrefix(p)
	}
	set, _ := b.IPSet()
	return alias{kind: aliasPrefixes, name: name, prefixes: ps, set: set}
}

// parseAddrs parses an IP, a CIDR or an inclusive range "a-b".
func parseAddrs(s string) ([]netip.Prefix, error) {
	if strings.Contains(s, "-") {
		r, err := netipx.ParseIPRange(s)
		if err != nil {
			return nil, fmt.Errorf("%q: invalid IP range", s)
		}
		return r.Prefixes(), nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q: invalid CIDR", s)
		}
		return []netip.Prefix{p.Masked()}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil, fmt.Errorf("%q: invalid address", s)
	}
	if a.Zone() != "" {
		return nil, fmt.Errorf("%q: zoned addresses are not allowed", s)
	}
	return []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}, nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// checkLogin checks a user login such as "alice@example.com".
func checkLogin(s string) error {
	at := strings.IndexByte(s, '@')
	if at < 0 || strings.ContainsAny(s, " \t\n") || strings.Count(s, "@") > 1 && !strings.HasSuffix(s, "@") {
		return fmt.Errorf("user %q is not a valid login", s)
	}
	return nil
}

// checkTagName checks the name of a tag as declared in tagOwners.
func checkTagName(s string) error {
	if !strings.HasPrefix(s, "tag:") {
		return fmt.Errorf("%q: tags must start with 'tag:'", s)
	}
	name := s[len("tag:"):]
	if name == "" {
		return fmt.Errorf("%q: tag name must not be empty", s)
	}
	for i, r := range name {
		if r > unicode.MaxASCII {
			return fmt.Errorf("%q: tag names must start with a letter, after 'tag:'", s)
		}
		if i == 0 && !unicode.IsLetter(r) {
			return fmt.Errorf("%q: tag names must start with a letter, after 'tag:'", s)
		}
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_') {
			return fmt.Errorf("%q: tag names may contain only letters, digits, '-' and '_'", s)
		}
	}
	return nil
}

// checkGroupName checks the name of a group as declared in groups.
func checkGroupName(s string) error {
	if !strings.HasPrefix(s, "group:") || len(s) == len("group:") {
		return fmt.Errorf("%q: group names must start with 'group:'", s)
	}
	if strings.ContainsAny(s, " \t\n@") {
		return fmt.Errorf("%q: group names must not contain spaces or '@'", s)
	}
	return nil
}
