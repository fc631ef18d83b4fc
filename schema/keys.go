package schema

import (
	"reflect"
	"sort"
	"strings"
)

// ownKeys are tailplane's own top-level keys.
var ownKeys = []string{"tailnet", "users", "dns", "routes", "authKeys", "apiKeys", "login"}

// tailscaleKeys are the top-level keys of Tailscale's policy file. Those
// with a field in Policy are decoded; the rest parse but draw a
// "not supported yet" warning.
var tailscaleKeys = []string{
	"acls", "grants", "groups", "hosts", "tagOwners", "autoApprovers", "ssh",
	"nodeAttrs", "tests", "sshTests", "ipsets", "postures", "defaultSrcPosture",
	"attrConfig", "derpMap", "randomizeClientPort", "disableIPv4", "OneCGNATRoute",
}

// policyFields maps each JSON name of a Policy field to its field index.
var policyFields = func() map[string]int {
	m := make(map[string]int)
	t := reflect.TypeFor[Policy]()
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}()

// topKey classifies a top-level key.
type topKeyKind int

const (
	keyUnknown     topKeyKind = iota
	keyOwn                    // one of tailplane's keys
	keyPolicy                 // a Tailscale key decoded into Policy
	keyUnsupported            // a Tailscale key tailplane does not implement yet
)

func classifyTopKey(key string) topKeyKind {
	for _, k := range ownKeys {
		if k == key {
			return keyOwn
		}
	}
	if _, ok := policyFields[key]; ok {
		return keyPolicy
	}
	for _, k := range tailscaleKeys {
		if k == key {
			return keyUnsupported
		}
	}
	return keyUnknown
}

// allTopKeys lists every known top-level key, sorted.
func allTopKeys() []string {
	seen := make(map[string]bool)
	var out []string
	for _, list := range [][]string{ownKeys, tailscaleKeys} {
		for _, k := range list {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	for k := range policyFields {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// tailscaleCaseKey returns the canonical spelling of a Tailscale policy key
// that matches key case-insensitively (Tailscale's parser accepts any case),
// or "".
func tailscaleCaseKey(key string) string {
	for _, k := range allTopKeys() {
		if classifyTopKey(k) != keyOwn && strings.EqualFold(k, key) {
			return k
		}
	}
	return ""
}

// suggest returns the candidate closest to s, or "" if none is close.
func suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	ls := strings.ToLower(s)
	for _, c := range candidates {
		lc := strings.ToLower(c)
		d := editDistance(ls, lc)
		if lc == ls {
			d = 0
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(s) <= 4 {
		limit = 1
	}
	if bestD <= limit {
		return best
	}
	return ""
}

// editDistance is the optimal-string-alignment distance between a and b,
// in bytes: insertions, deletions, substitutions and swaps of neighbours
// ("nmae" for "name") each count one.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// PolicyKeys returns the JSON names of Policy's fields, in the order they
// are declared. Code that handles every policy key (reconcile's objects)
// iterates this list, so a field added to Policy is never dropped silently.
func PolicyKeys() []string {
	t := reflect.TypeFor[Policy]()
	out := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// Field returns a pointer to the field of p whose JSON name is key (for
// json.Unmarshal, or reflect), or nil if Policy has no such key.
func (p *Policy) Field(key string) any {
	i, ok := policyFields[key]
	if !ok {
		return nil
	}
	return reflect.ValueOf(p).Elem().Field(i).Addr().Interface()
}
