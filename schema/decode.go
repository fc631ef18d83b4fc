package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// timeNow is the clock the loader compares auth key expiries with; tests replace it.
var timeNow = time.Now

// decoder turns the merged, position-annotated document into a Tailnet,
// checking the meaning of tailplane's own keys as it goes.
type decoder struct {
	src   *Source
	now   time.Time
	diags Diagnostics
	// policyErrs are decoding errors of Tailscale policy keys, by top-level
	// key; they are dropped when the CUE schema already explained the problem.
	policyErrs map[string]Diagnostic
}

func (d *decoder) errorf(path, hint, format string, args ...any) {
	d.diags = append(d.diags, d.src.Diag(path, fmt.Sprintf(format, args...), hint))
}

func (d *decoder) warnf(path, hint, format string, args ...any) {
	d.diags = append(d.diags, d.src.Warn(path, fmt.Sprintf(format, args...), hint))
}

// decode fills a Tailnet from the document root.
func (d *decoder) decode(root *node) *Tailnet {
	t := &Tailnet{
		Settings: Settings{NodeKeyExpiry: DefaultNodeKeyExpiry, SSH: true, FileSharing: true}.WithDefaults(),
		Users:    map[string]User{},
		Routes:   map[string][]netip.Prefix{},
		AuthKeys: map[string]AuthKey{},
		APIKeys:  map[string]APIKey{},
		DNS:      DNS{MagicDNS: true},
		Source:   d.src,
	}
	if root.kind != kObject {
		d.errorf("", `wrap everything in { ... }`, "the document must be an object, not %s", root.describe())
		return t
	}
	// Policy keys first: the checks of our own keys look at tagOwners.
	for _, f := range root.fields {
		switch classifyTopKey(f.key) {
		case keyPolicy:
			d.policyKey(&t.Policy, f.key, f.val)
		case keyUnsupported:
			d.warnf(PathKey("", f.key), "tailplane parses it but ignores it for now",
				"Tailscale's %q key is not supported yet", f.key)
		case keyUnknown:
			hint := "known keys are " + strings.Join(allTopKeys(), ", ")
			if s := suggest(f.key, allTopKeys()); s != "" {
				hint = fmt.Sprintf("did you mean %q?", s)
			}
			d.errorf(PathKey("", f.key), hint, "unknown top-level key %q", f.key)
		}
	}
	if len(t.Policy.DERPMap) > 0 {
		d.derpMap(t.Policy.DERPMap)
	}
	if t.Policy.OneCGNATRoute != "" {
		d.warnf("OneCGNATRoute", "clients keep their default route for 100.64.0.0/10; remove the key to silence this",
			"Tailscale's \"OneCGNATRoute\" key is not supported yet")
	}
	for _, key := range ownKeys {
		n := root.get(key)
		if n == nil {
			continue
		}
		switch key {
		case "tailnet":
			d.settings(&t.Settings, n)
		case "users":
			d.users(t, n)
		case "dns":
			d.dns(&t.DNS, n)
		case "routes":
			d.routes(t, n, root.get("authKeys"))
		case "authKeys":
			d.authKeys(t, n)
		case "apiKeys":
			d.apiKeys(t, n)
		case "login":
			d.login(&t.Login, n)
		}
	}
	if t.DNS.HTTPS {
		d.checkHTTPS(t, root.get("tailnet").get("domain") != nil)
	}
	return t
}

// policyKey decodes one Tailscale policy key into its Policy field.
func (d *decoder) policyKey(p *Policy, key string, n *node) {
	dst := p.Field(key)
	if err := json.Unmarshal(n.appendJSON(nil), dst); err != nil {
		path := PathKey("", key)
		msg := err.Error()
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			msg = fmt.Sprintf("cannot use %s value as %s", te.Value, te.Type)
			if te.Field != "" {
				msg += " in field " + te.Field
			}
		}
		d.policyErrs[key] = d.src.Diag(path, msg, "see Tailscale's policy file syntax reference")
		return
	}
	d.unknownPolicyFields(n, PathKey("", key), reflect.TypeOf(dst).Elem())
}

// unknownPolicyFields warns about object members inside a policy key that
// no field of the Go type t decodes (encoding/json, like Tailscale, would
// drop them silently): they are typos, or Tailscale features tailplane
// does not support yet. Keys are matched case-insensitively, as Tailscale's
// parser does. Members spelled in another case than the field's JSON name
// are also recorded in the Source under the canonical spelling.
func (d *decoder) unknownPolicyFields(n *node, path string, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.kind == kArray && t.Kind() == reflect.Slice && t != reflect.TypeFor[json.RawMessage]():
		for i, e := range n.elems {
			d.unknownPolicyFields(e, PathIndex(path, i), t.Elem())
		}
	case n.kind == kObject && t.Kind() == reflect.Map:
		for _, f := range n.fields {
			d.unknownPolicyFields(f.val, PathKey(path, f.key), t.Elem())
		}
	case n.kind == kObject && t.Kind() == reflect.Struct:
		names := jsonFieldNames(t)
		for _, f := range n.fields {
			i := slices.IndexFunc(names, func(name string) bool { return strings.EqualFold(name, f.key) })
			fp := PathKey(path, f.key)
			if i < 0 {
				hint := "tailplane ignores it; known keys here are " + strings.Join(names, ", ")
				if s := suggest(f.key, names); s != "" {
					hint = fmt.Sprintf("did you mean %q? tailplane ignores it", s)
				}
				d.warnf(fp, hint, "key %q is unknown or not supported yet", f.key)
				continue
			}
			if names[i] != f.key {
				// The policy package names fields by their canonical
				// spelling ("dst" for a "Dst" key); let those paths resolve.
				fp = PathKey(path, names[i])
				recordPositions(d.src, f.val, fp)
			}
			d.unknownPolicyFields(f.val, fp, t.Field(fieldIndex(t, names[i])).Type)
		}
	}
}

// jsonFieldNames lists the JSON names of the fields of struct type t.
func jsonFieldNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// fieldIndex returns the index of the field of t with JSON name name.
func fieldIndex(t reflect.Type, name string) int {
	for i := 0; i < t.NumField(); i++ {
		if n, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); n == name {
			return i
		}
	}
	return -1
}

// fields iterates over the members of the object n at path, reporting
// members not in allowed (with a did-you-mean hint) and a non-object n.
func (d *decoder) fields(n *node, path string, allowed []string, each func(key, path string, v *node)) {
	if !d.isObject(n, path) {
		return
	}
	for _, f := range n.fields {
		fp := PathKey(path, f.key)
		if allowed != nil && !contains(allowed, f.key) {
			hint := "allowed keys are " + strings.Join(allowed, ", ")
			if s := suggest(f.key, allowed); s != "" {
				hint = fmt.Sprintf("did you mean %q?", s)
			}
			d.errorf(fp, hint, "unknown key %q", f.key)
			continue
		}
		each(f.key, fp, f.val)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (d *decoder) isObject(n *node, path string) bool {
	if n.kind == kObject {
		return true
	}
	d.errorf(path, "", "expected an object, got %s", n.describe())
	return false
}

func (d *decoder) str(n *node, path string) (string, bool) {
	if n.kind == kString {
		return n.str, true
	}
	d.errorf(path, "", "expected a string, got %s", n.describe())
	return "", false
}

func (d *decoder) boolean(n *node, path string) (bool, bool) {
	if n.kind == kBool {
		return n.b, true
	}
	d.errorf(path, "use true or false, without quotes", "expected a boolean, got %s", n.describe())
	return false, false
}

func (d *decoder) integer(n *node, path string) (int, bool) {
	if n.kind == kNumber {
		if i, err := strconv.Atoi(n.str); err == nil {
			return i, true
		}
	}
	d.errorf(path, "", "expected an integer, got %s", n.describe())
	return 0, false
}

// strList decodes a list of strings, calling each for every valid element.
func (d *decoder) strList(n *node, path string, each func(i int, s, path string)) {
	if n.kind != kArray {
		d.errorf(path, "", "expected a list, got %s", n.describe())
		return
	}
	for i, e := range n.elems {
		ep := PathIndex(path, i)
		if s, ok := d.str(e, ep); ok {
			each(i, s, ep)
		}
	}
}

// settings decodes the `tailnet` key.
func (d *decoder) settings(s *Settings, n *node) {
	allowed := []string{"name", "domain", "ipv4", "ipv6", "nodeKeyExpiry", "ephemeralTimeout", "ssh", "fileSharing", "deviceApproval"}
	d.fields(n, "tailnet", allowed, func(key, path string, v *node) {
		switch key {
		case "ssh", "fileSharing", "deviceApproval":
			b, ok := d.boolean(v, path)
			switch {
			case !ok:
			case key == "ssh":
				s.SSH = b
			case key == "deviceApproval":
				s.DeviceApproval = b
			default:
				s.FileSharing = b
			}
			return
		}
		str, ok := d.str(v, path)
		if !ok {
			return
		}
		switch key {
		case "name":
			s.Name = str
		case "domain":
			if msg := checkDNSName(str); msg != "" {
				d.errorf(path, `use a domain you control such as "tail.example.com"`, "invalid MagicDNS domain %q: %s", str, msg)
				return
			}
			s.Domain = strings.ToLower(strings.TrimSuffix(str, "."))
		case "ipv4", "ipv6":
			if p, ok := d.tailnetPrefix(key, str, path); ok {
				if key == "ipv4" {
					s.IPv4 = p
				} else {
					s.IPv6 = p
				}
			}
		case "nodeKeyExpiry":
			if dur, err := ParseDuration(str); err != nil {
				d.errorf(path, `write e.g. "180d", "12h" or "0" for never`, "invalid nodeKeyExpiry %q: %v", str, err)
			} else {
				s.NodeKeyExpiry = dur
			}
		case "ephemeralTimeout":
			dur, err := ParseDuration(str)
			switch {
			case err != nil:
				d.errorf(path, `write e.g. "30m" or "1h"`, "invalid ephemeralTimeout %q: %v", str, err)
			case dur == 0:
				d.errorf(path, `write e.g. "30m"; remove the key for the default (30m)`, "ephemeralTimeout must be positive")
			default:
				s.EphemeralTimeout = dur
			}
		}
	})
	if s.IPv4.IsValid() && s.IPv6.IsValid() && s.IPv4.Overlaps(s.IPv6) {
		d.errorf("tailnet.ipv6", "", "tailnet prefixes %s and %s overlap", s.IPv4, s.IPv6)
	}
}

// Reserved addresses inside the Tailscale ranges that are never given to nodes.
var (
	quad100       = netip.MustParseAddr("100.100.100.100")       // Tailscale's in-client DNS/service address
	quad100v6     = netip.MustParseAddr("fd7a:115c:a1e0::53")    // its IPv6 twin
	chromeOSRange = netip.MustParsePrefix("100.115.92.0/23")     // used by ChromeOS VMs; Tailscale avoids it
	cgnat         = netip.MustParsePrefix("100.64.0.0/10")       // where Tailscale clients expect node IPv4s
	tsULA         = netip.MustParsePrefix("fd7a:115c:a1e0::/48") // where Tailscale clients expect node IPv6s
)

// IsReservedIP reports whether a is used by Tailscale clients themselves and
// must never be assigned to a node, even though the default prefixes contain it.
func IsReservedIP(a netip.Addr) bool {
	return a == quad100 || a == quad100v6 || chromeOSRange.Contains(a)
}

func (d *decoder) tailnetPrefix(key, s, path string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		d.errorf(path, `write a CIDR prefix such as "100.64.0.0/10"`, "invalid %s prefix %q: %s", key, s, netipReason(err))
		return netip.Prefix{}, false
	}
	if key == "ipv4" && !p.Addr().Is4() {
		d.errorf(path, `the IPv6 range goes in "ipv6"`, "%s is not an IPv4 prefix", s)
		return netip.Prefix{}, false
	}
	if key == "ipv6" && (!p.Addr().Is6() || p.Addr().Is4In6()) {
		d.errorf(path, `the IPv4 range goes in "ipv4"`, "%s is not an IPv6 prefix", s)
		return netip.Prefix{}, false
	}
	if m := p.Masked(); m != p {
		d.errorf(path, fmt.Sprintf("write %q", m.String()), "prefix %s has host bits set", s)
		return netip.Prefix{}, false
	}
	if (key == "ipv4" && p.Bits() > 30) || (key == "ipv6" && p.Bits() > 120) {
		d.errorf(path, "use a shorter prefix", "prefix %s is too small for a tailnet", s)
		return netip.Prefix{}, false
	}
	if chromeOSRange.Contains(p.Addr()) && p.Bits() >= chromeOSRange.Bits() {
		d.errorf(path, "pick a range outside 100.115.92.0/23", "prefix %s lies inside the range reserved for ChromeOS VMs", s)
		return netip.Prefix{}, false
	}
	if key == "ipv4" && !(cgnat.Contains(p.Addr()) && p.Bits() >= cgnat.Bits()) {
		d.warnf(path, "Tailscale clients treat 100.64.0.0/10 specially; other ranges may clash with real networks",
			"prefix %s is outside 100.64.0.0/10", s)
	}
	if key == "ipv6" && !(tsULA.Contains(p.Addr()) && p.Bits() >= tsULA.Bits()) {
		d.warnf(path, "Tailscale clients treat fd7a:115c:a1e0::/48 specially",
			"prefix %s is outside fd7a:115c:a1e0::/48", s)
	}
	return p, true
}

// netipReason strips the function name and input net/netip puts in front
// of its parse errors, which the caller's message already shows.
func netipReason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "): "); i >= 0 && strings.HasPrefix(msg, "netip.") {
		return msg[i+3:]
	}
	return msg
}

// ParseDuration parses a duration written as a sequence of <integer><unit>
// with units d (24h), h, m and s, such as "180d" or "1h30m"; "0" is zero.
func ParseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("expected a number at %q", s)
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("number %s out of range", s[:i])
		}
		if i == len(s) {
			return 0, fmt.Errorf("missing unit after %s (use d, h, m or s)", s[:i])
		}
		var unit time.Duration
		switch s[i] {
		case 'd':
			unit = 24 * time.Hour
		case 'h':
			unit = time.Hour
		case 'm':
			unit = time.Minute
		case 's':
			unit = time.Second
		default:
			return 0, fmt.Errorf("unknown unit %q (use d, h, m or s)", s[i:i+1])
		}
		if n > int64((1<<63-1)/unit) || total+time.Duration(n)*unit < total {
			return 0, errors.New("duration too long")
		}
		total += time.Duration(n) * unit
		s = s[i+1:]
	}
	return total, nil
}

// users decodes the `users` key.
func (d *decoder) users(t *Tailnet, n *node) {
	var owners []string
	lower := make(map[string]string)
	d.fields(n, "users", nil, func(login, path string, v *node) {
		u := User{Login: login, Role: RoleMember}
		if i := strings.IndexByte(login, '@'); i <= 0 || i == len(login)-1 || strings.ContainsAny(login, " \t\n") {
			d.errorf(path, `users are keyed by login, e.g. "alice@example.com"`, "login %q is not of the form name@domain", login)
		}
		if prev, dup := lower[strings.ToLower(login)]; dup {
			d.errorf(path, "logins are compared case-insensitively; keep one", "login %q is the same user as %q (at %s)", login, prev, d.src.Pos(PathKey("users", prev)))
		}
		lower[strings.ToLower(login)] = login
		d.fields(v, path, []string{"name", "role"}, func(key, fp string, fv *node) {
			s, ok := d.str(fv, fp)
			if !ok {
				return
			}
			switch key {
			case "name":
				u.Name = s
			case "role":
				switch r := Role(s); r {
				case RoleOwner, RoleAdmin, RoleMember:
					u.Role = r
				default:
					hint := `use "owner", "admin" or "member"`
					if sug := suggest(s, []string{"owner", "admin", "member"}); sug != "" {
						hint = fmt.Sprintf("did you mean %q?", sug)
					}
					switch s {
					case "network-admin", "it-admin", "billing-admin", "auditor":
						d.errorf(fp, `use "admin" or "member"`, "Tailscale's %q role is not supported by tailplane", s)
						return
					}
					d.errorf(fp, hint, "unknown role %q", s)
				}
			}
		})
		if u.Name == "" {
			u.Name, _, _ = strings.Cut(login, "@")
		}
		if u.Role == RoleOwner {
			owners = append(owners, login)
		}
		t.Users[login] = u
	})
	if len(owners) > 1 {
		sort.Strings(owners)
		for _, o := range owners[1:] {
			d.warnf(PathKey(PathKey("users", o), "role"), "Tailscale tailnets have one owner; make the others admins",
				"more than one owner (%s); autogroup:owner matches all of them", strings.Join(owners, ", "))
		}
	}
}
