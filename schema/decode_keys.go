package schema

import (
	"cmp"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
)

// checkDNSName returns why name is not a valid DNS name, or "". A single
// trailing dot is allowed.
func checkDNSName(name string) string {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "empty name"
	}
	if len(name) > 253 {
		return "longer than 253 characters"
	}
	for _, label := range strings.Split(name, ".") {
		if msg := checkDNSLabel(label); msg != "" {
			return msg
		}
	}
	return ""
}

// checkDNSLabel returns why label is not a valid DNS label (letters,
// digits and inner hyphens, 1 to 63 bytes), or "".
func checkDNSLabel(label string) string {
	switch {
	case label == "":
		return "empty label"
	case len(label) > 63:
		return fmt.Sprintf("label %q is longer than 63 characters", label)
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Sprintf("label %q starts or ends with '-'", label)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Sprintf("label %q contains %q; use letters, digits and '-'", label, c)
		}
	}
	return ""
}

func (d *decoder) addr(s, path, what string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		d.errorf(path, `write a plain IP address such as "1.1.1.1" or "2606:4700:4700::1111"`, "invalid %s %q", what, s)
		return netip.Addr{}, false
	}
	return a, true
}

// dns decodes the `dns` key.
func (d *decoder) dns(dns *DNS, n *node) {
	allowed := []string{"magicDNS", "nameservers", "splitDNS", "searchDomains", "records", "https"}
	d.fields(n, "dns", allowed, func(key, path string, v *node) {
		switch key {
		case "magicDNS":
			if b, ok := d.boolean(v, path); ok {
				dns.MagicDNS = b
			}
		case "https":
			if b, ok := d.boolean(v, path); ok {
				dns.HTTPS = b
			}
		case "nameservers":
			dns.Nameservers = d.addrList(v, path, "nameserver")
		case "splitDNS":
			dns.SplitDNS = map[string][]netip.Addr{}
			seen := map[string]string{}
			d.fields(v, path, nil, func(domain, dp string, dv *node) {
				if msg := checkDNSName(domain); msg != "" {
					d.errorf(dp, `key splitDNS by a domain such as "corp.example.com"`, "invalid split DNS domain %q: %s", domain, msg)
					return
				}
				canon := strings.ToLower(strings.TrimSuffix(domain, "."))
				if prev, dup := seen[canon]; dup {
					d.errorf(dp, "merge the two lists", "split DNS domain %q is the same as %q", domain, prev)
					return
				}
				seen[canon] = domain
				dns.SplitDNS[canon] = d.addrList(dv, dp, "nameserver")
			})
		case "searchDomains":
			seen := map[string]bool{}
			d.strList(v, path, func(_ int, s, ep string) {
				if msg := checkDNSName(s); msg != "" {
					d.errorf(ep, "", "invalid search domain %q: %s", s, msg)
					return
				}
				canon := strings.ToLower(strings.TrimSuffix(s, "."))
				if seen[canon] {
					d.errorf(ep, "remove the duplicate", "duplicate search domain %q", s)
					return
				}
				seen[canon] = true
				dns.SearchDomains = append(dns.SearchDomains, canon)
			})
		case "records":
			d.records(dns, v, path)
		}
	})
}

// addrList decodes a list of IP addresses, reporting duplicates.
func (d *decoder) addrList(n *node, path, what string) []netip.Addr {
	var out []netip.Addr
	d.strList(n, path, func(_ int, s, ep string) {
		a, ok := d.addr(s, ep, what)
		if !ok {
			return
		}
		if slices.Contains(out, a) {
			d.errorf(ep, "remove the duplicate", "duplicate %s %s", what, a)
			return
		}
		if a == quad100 || a == quad100v6 {
			d.errorf(ep, "list the upstream resolvers MagicDNS should forward to", "nameserver %s is the resolver inside every Tailscale client; forwarding to it loops", a)
			return
		}
		out = append(out, a)
	})
	return out
}

func (d *decoder) records(dns *DNS, n *node, path string) {
	if n.kind != kArray {
		d.errorf(path, "", "expected a list of records, got %s", n.describe())
		return
	}
	seen := map[DNSRecord]string{}
	for i, e := range n.elems {
		ep := PathIndex(path, i)
		var r DNSRecord
		var typePath string
		ok := true
		d.fields(e, ep, []string{"name", "type", "value"}, func(key, fp string, fv *node) {
			s, sok := d.str(fv, fp)
			if !sok {
				ok = false
				return
			}
			switch key {
			case "name":
				if msg := checkDNSName(s); msg != "" {
					d.errorf(fp, "", "invalid record name %q: %s", s, msg)
					ok = false
					return
				}
				r.Name = strings.ToLower(strings.TrimSuffix(s, "."))
			case "type":
				typePath = fp
				if s != "A" && s != "AAAA" {
					d.errorf(fp, `use "A" for IPv4 or "AAAA" for IPv6`, "unsupported record type %q", s)
					ok = false
					return
				}
				r.Type = s
			case "value":
				a, aok := d.addr(s, fp, "record value")
				if !aok {
					ok = false
					return
				}
				r.Value = a
			}
		})
		if e.kind != kObject || !ok {
			continue
		}
		if r.Name == "" || r.Type == "" || !r.Value.IsValid() {
			d.errorf(ep, "", "a record needs name, type and value")
			continue
		}
		if r.Type == "A" && !r.Value.Is4() {
			d.errorf(PathKey(ep, "value"), `use type "AAAA" for an IPv6 address`, "A record %s has IPv6 value %s", r.Name, r.Value)
			continue
		}
		if r.Type == "AAAA" && r.Value.Is4() {
			d.errorf(typePath, `use type "A" for an IPv4 address`, "AAAA record %s has IPv4 value %s", r.Name, r.Value)
			continue
		}
		if prev, dup := seen[r]; dup {
			d.errorf(ep, "remove the duplicate", "duplicate record %s %s %s (first at %s)", r.Name, r.Type, r.Value, d.src.Pos(prev))
			continue
		}
		seen[r] = ep
		dns.Records = append(dns.Records, r)
	}
}

// routes decodes the `routes` key. authKeys is the document's raw
// `authKeys` value, for hints (see routeKey).
func (d *decoder) routes(t *Tailnet, n, authKeys *node) {
	d.fields(n, "routes", nil, func(owner, path string, v *node) {
		d.routeKey(t, owner, path, authKeys)
		var list []netip.Prefix
		d.strList(v, path, func(_ int, s, ep string) {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				if a, aerr := netip.ParseAddr(s); aerr == nil {
					d.errorf(ep, fmt.Sprintf("write %q for a single address", netip.PrefixFrom(a, a.BitLen()).String()), "route %q is an address, not a prefix", s)
					return
				}
				d.errorf(ep, `write a CIDR prefix such as "10.0.0.0/8", or "0.0.0.0/0" and "::/0" for an exit node`, "invalid route %q", s)
				return
			}
			if m := p.Masked(); m != p {
				d.errorf(ep, fmt.Sprintf("write %q", m.String()), "route %s has host bits set", s)
				return
			}
			if slices.Contains(list, p) {
				d.errorf(ep, "remove the duplicate", "duplicate route %s", p)
				return
			}
			for _, own := range []netip.Prefix{t.Settings.IPv4, t.Settings.IPv6} {
				if p.Bits() > 0 && own.IsValid() && p.Overlaps(own) {
					d.warnf(ep, "nodes reach each other directly; approve only networks behind the node",
						"route %s overlaps the tailnet's own range %s", p, own)
				}
			}
			list = append(list, p)
		})
		t.Routes[owner] = list
	})
}

// checkTag reports a tag that is malformed or has no tagOwners entry.
func (d *decoder) checkTag(t *Tailnet, tag, name, path string) {
	if !strings.HasPrefix(tag, "tag:") {
		d.errorf(path, fmt.Sprintf("write %q", "tag:"+tag), "tag %q does not start with \"tag:\"", tag)
		return
	}
	if msg := checkDNSLabel(name); msg != "" {
		d.errorf(path, "", "invalid tag %q: %s", tag, msg)
		return
	}
	if _, ok := t.Policy.TagOwners[tag]; !ok {
		d.errorf(path, fmt.Sprintf(`add %q: ["autogroup:admin"] to tagOwners`, tag), "tag %q has no tagOwners entry", tag)
	}
}

var secretHashRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func (d *decoder) secretHash(s, path string) bool {
	if secretHashRE.MatchString(s) {
		return true
	}
	hint := `write "sha256:" followed by the 64 lowercase hex digits of the SHA-256 of the full key; never commit the secret itself`
	if strings.HasPrefix(strings.ToLower(s), "tskey-") {
		hint = "this looks like the secret itself: remove it from the repository and commit only its sha256 hash"
	}
	d.errorf(path, hint, "malformed secretHash")
	return false
}

// authKeys decodes the `authKeys` key.
func (d *decoder) authKeys(t *Tailnet, n *node) {
	allowed := []string{"user", "tags", "reusable", "ephemeral", "preauthorized", "expires", "uses", "secretHash"}
	d.fields(n, "authKeys", nil, func(name, path string, v *node) {
		k := AuthKey{Name: name, Preauthorized: true}
		hasUser, hasTags, hasHash := false, false, false
		d.fields(v, path, allowed, func(key, fp string, fv *node) {
			switch key {
			case "user":
				s, ok := d.str(fv, fp)
				if !ok {
					return
				}
				hasUser = true
				k.User = s
				if _, ok := t.Users[s]; !ok {
					d.errorf(fp, fmt.Sprintf("add %q to users, or use tags", s), "user %q is not in users", s)
				}
			case "tags":
				hasTags = true
				d.strList(fv, fp, func(_ int, s, ep string) {
					if slices.Contains(k.Tags, s) {
						d.errorf(ep, "remove the duplicate", "duplicate tag %q", s)
						return
					}
					d.checkTag(t, s, strings.TrimPrefix(s, "tag:"), ep)
					k.Tags = append(k.Tags, s)
				})
				if fv.kind == kArray && len(fv.elems) == 0 {
					d.errorf(fp, "list at least one tag, or use user", "tags is empty")
				}
			case "reusable":
				k.Reusable, _ = d.boolean(fv, fp)
			case "ephemeral":
				k.Ephemeral, _ = d.boolean(fv, fp)
			case "preauthorized":
				if b, ok := d.boolean(fv, fp); ok {
					k.Preauthorized = b
					if !b && !t.Settings.DeviceApproval {
						d.warnf(fp, `set "tailnet": {"deviceApproval": true} to make its nodes wait for approval`,
							"preauthorized: false has no effect: device approval is off, so every registered node is authorized")
					}
				}
			case "expires":
				s, ok := d.str(fv, fp)
				if !ok {
					return
				}
				tm, err := time.Parse(time.RFC3339, s)
				if err != nil {
					d.errorf(fp, `write an RFC 3339 time such as "2027-01-31T00:00:00Z"`, "invalid expires %q", s)
					return
				}
				k.Expires = tm
				if now := d.now; tm.Before(now) {
					d.warnf(fp, "extend or remove the key", "auth key expired on %s", tm.UTC().Format(time.RFC3339))
				}
			case "uses":
				u, ok := d.integer(fv, fp)
				if !ok {
					return
				}
				if u < 0 {
					d.errorf(fp, "use a positive number, or remove uses for no limit", "uses is negative")
					return
				}
				k.Uses = u
			case "secretHash":
				if s, ok := d.str(fv, fp); ok {
					hasHash = true
					if d.secretHash(s, fp) {
						k.SecretHash = s
					}
				}
			}
		})
		if v.kind != kObject {
			return
		}
		switch {
		case !hasUser && !hasTags:
			d.errorf(path, `set "user": "<login>" or "tags": ["tag:..."]`, "auth key %q has neither user nor tags", name)
		case hasUser && hasTags:
			d.errorf(path, "keep one: tagged nodes are owned by their tags, not by a user", "auth key %q has both user and tags", name)
		}
		if !hasHash {
			d.errorf(path, `add "secretHash": "sha256:<hex SHA-256 of the full key>"`, "auth key %q has no secretHash", name)
		}
		if k.Uses > 1 && !k.Reusable {
			d.warnf(PathKey(path, "uses"), `add "reusable": true`, "uses is %d but the key is not reusable, so it registers one node", k.Uses)
		}
		t.AuthKeys[name] = k
	})
	hashes := make(map[string]string, len(t.AuthKeys))
	for name, k := range t.AuthKeys {
		hashes[name] = k.SecretHash
	}
	d.sharedSecrets("authKeys", "auth key", hashes)
}

// apiKeys decodes the `apiKeys` key.
func (d *decoder) apiKeys(t *Tailnet, n *node) {
	d.fields(n, "apiKeys", nil, func(name, path string, v *node) {
		k := APIKey{Name: name}
		d.fields(v, path, []string{"role", "secretHash"}, func(key, fp string, fv *node) {
			s, ok := d.str(fv, fp)
			if !ok {
				return
			}
			switch key {
			case "role":
				if s != "admin" && s != "read" {
					d.errorf(fp, `use "admin" or "read"`, "unknown API key role %q", s)
					return
				}
				k.Role = s
			case "secretHash":
				if d.secretHash(s, fp) {
					k.SecretHash = s
				}
			}
		})
		if v.kind != kObject {
			return
		}
		if v.get("role") == nil {
			d.errorf(path, `add "role": "read" or "admin"`, "API key %q has no role", name)
		}
		if v.get("secretHash") == nil {
			d.errorf(path, `add "secretHash": "sha256:<hex SHA-256 of the full key>"`, "API key %q has no secretHash", name)
		}
		t.APIKeys[name] = k
	})
	hashes := make(map[string]string, len(t.APIKeys))
	for name, k := range t.APIKeys {
		hashes[name] = k.SecretHash
	}
	d.sharedSecrets("apiKeys", "API key", hashes)
}

// sharedSecrets reports each key of section (names to secretHash) whose
// secretHash a key declared before it (by file, line and column) already
// has: a presented secret would match either, so which key's user, tags,
// limits or role apply would be chance. The error points at the later
// key's secretHash; its hint names the first key and where it is.
func (d *decoder) sharedSecrets(section, what string, hashes map[string]string) {
	type decl struct {
		name, path string
		pos        Pos
	}
	byHash := map[string][]decl{}
	for name, h := range hashes {
		if h == "" {
			continue // missing or malformed: reported already
		}
		path := PathKey(PathKey(section, name), "secretHash")
		byHash[h] = append(byHash[h], decl{name, path, d.src.Pos(path)})
	}
	for _, ds := range byHash {
		if len(ds) < 2 {
			continue
		}
		slices.SortFunc(ds, func(a, b decl) int {
			return cmp.Or(cmp.Compare(a.pos.File, b.pos.File), cmp.Compare(a.pos.Line, b.pos.Line),
				cmp.Compare(a.pos.Col, b.pos.Col), cmp.Compare(a.name, b.name))
		})
		first := ds[0]
		for _, dup := range ds[1:] {
			d.errorf(dup.path,
				fmt.Sprintf("%s %q declares this secretHash at %s; give each key its own secret (tailplane authkey new)", what, first.name, first.pos),
				"%s %q has the same secretHash as %s %q", what, dup.name, what, first.name)
		}
	}
}
