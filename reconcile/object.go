package reconcile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tailplane/tailplane/schema"
)

// Kind names the type of an Object. Kinds are listed in plan order.
type Kind string

const (
	KindTailnet   Kind = "tailnet"   // the `tailnet` settings; one object named "settings"
	KindDNS       Kind = "dns"       // `dns` without its records; one object named "settings"
	KindDNSRecord Kind = "dnsRecord" // one per record, named "<name> <type> <value>"
	KindUser      Kind = "user"      // one per user, named by login
	KindAuthKey   Kind = "authKey"   // one per auth key, named by key name
	KindAPIKey    Kind = "apiKey"    // one per API key, named by key name
	KindRoute     Kind = "route"     // approved routes, named by node name or "tag:x"
	KindLogin     Kind = "login"     // `login.oidc`, one object named "oidc" when set
	KindGroup     Kind = "group"     // policy `groups`, one per group ("group:eng")
	KindTagOwner  Kind = "tagOwner"  // policy `tagOwners`, one per tag ("tag:web")
	KindHost      Kind = "host"      // policy `hosts`, one per host alias
	KindIPSet     Kind = "ipset"     // policy `ipsets`, one per set
	KindPosture   Kind = "posture"   // policy `postures`, one per posture
	KindPolicy    Kind = "policy"    // every other policy key, one object per key ("acls", "ssh", ...)
)

func kindRank(k Kind) int {
	if i := slices.Index(kindOrder, k); i >= 0 {
		return i
	}
	return len(kindOrder) // unknown kinds (from a newer tailplane) sort last
}

// settingsName is the name of the singleton tailnet and dns objects.
const settingsName = "settings"

// Object is one declared item of a tailnet: its kind, a stable name unique
// within the kind, and its value as canonical JSON (compact, fixed field
// order, sorted map keys).
type Object struct {
	Kind  Kind            `json:"kind"`
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
}

// policyKeys are the names of KindPolicy objects, in plan order: every
// key of schema.Policy, in declaration order, except the maps stored one
// entry per object under kinds of their own.
var policyKeys = slices.DeleteFunc(schema.PolicyKeys(), func(k string) bool {
	switch k {
	case "groups", "hosts", "tagOwners", "ipsets", "postures":
		return true
	}
	return false
})

// less orders objects by kind (plan order), then name; policy keys in the
// order of policyKeys.
func less(a, b Object) int {
	if ra, rb := kindRank(a.Kind), kindRank(b.Kind); ra != rb {
		return ra - rb
	}
	if a.Kind != b.Kind {
		return strings.Compare(string(a.Kind), string(b.Kind))
	}
	if a.Kind == KindPolicy {
		ra, rb := policyRank(a.Name), policyRank(b.Name)
		if ra != rb {
			return ra - rb
		}
	}
	return strings.Compare(a.Name, b.Name)
}

func policyRank(name string) int {
	if i := slices.Index(policyKeys, name); i >= 0 {
		return i
	}
	return len(policyKeys)
}

// sortObjects sorts objs into plan order.
func sortObjects(objs []Object) { slices.SortFunc(objs, less) }

// Desired turns a Tailnet into its canonical objects, in plan order. It is
// deterministic: equal Tailnets give byte-equal objects. Lists are kept in
// their declared order (so LoadApplied gives back exactly what was
// applied); maps come out with sorted keys. DNS records are a set: they are
// objects of their own, and identical records collapse into one. A
// json.RawMessage in the policy that is not valid JSON is stored as a JSON
// string; Apply refuses such a Tailnet with a ConfigError.
func Desired(t *schema.Tailnet) []Object {
	objs, _ := desired(t)
	return objs
}

// desired is Desired, also reporting values that could not be encoded as
// JSON (the first such problem).
func desired(t *schema.Tailnet) ([]Object, error) {
	if t == nil {
		return nil, &ConfigError{Err: fmt.Errorf("no tailnet given")}
	}
	e := &encoder{}
	for _, k := range kinds {
		k.encode(t, func(name string, v any) { e.add(k.kind, name, v) })
	}
	sortObjects(e.objs)
	// Identical DNS records share a name: keep one.
	e.objs = slices.CompactFunc(e.objs, func(a, b Object) bool { return a.Kind == b.Kind && a.Name == b.Name })
	return e.objs, e.err
}

// encoder collects objects and the first encoding error.
type encoder struct {
	objs []Object
	err  error
}

func (e *encoder) add(k Kind, name string, v any) {
	b, err := marshal(v)
	if err != nil {
		// Only a malformed json.RawMessage gets here. Keep the object so the
		// plan still shows it, with its raw text as a JSON string.
		if e.err == nil {
			e.err = &ConfigError{Err: fmt.Errorf("%s %s: value is not valid JSON: %w", k, name, err)}
		}
		b, _ = marshal(fmt.Sprintf("invalid JSON: %v", err))
	}
	e.objs = append(e.objs, Object{Kind: k, Name: name, Value: b})
}

// marshal encodes v as compact JSON without escaping <, > and &, so values
// read as written ("node:tsVersion >= '1.60'").
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// recordName is the stable identity of a DNS record.
func recordName(r schema.DNSRecord) string {
	return r.Name + " " + r.Type + " " + addrString(r.Value)
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, addrString(a))
	}
	return out
}

// nonNil returns s, or an empty slice for nil so it encodes as [].
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// formatDuration writes a duration the way config files do: whole days as
// "180d", zero as "0", anything else in Go syntax ("90m0s").
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// parseDuration reverses formatDuration.
func parseDuration(s string) (time.Duration, error) {
	if s == "0" || s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n > math.MaxInt64/int64(24*time.Hour) || n < math.MinInt64/int64(24*time.Hour) {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// equalJSON reports whether two canonical values are the same.
func equalJSON(a, b json.RawMessage) bool { return bytes.Equal(a, b) }

// Fingerprint is a content hash of objects ("sha256:<hex>"), independent
// of their order. Two configs with the same fingerprint apply the same
// state, so it can stand in for a commit SHA when serving a plain
// directory, and tells whether a directory changed since the last apply.
func Fingerprint(objs []Object) string {
	sorted := sortedUnique(objs)
	h := sha256.New()
	for _, o := range sorted {
		// Length-prefixed fields: no two object lists hash alike by
		// shifting bytes between kind, name and value.
		fmt.Fprintf(h, "%d:%s%d:%s%d:", len(o.Kind), o.Kind, len(o.Name), o.Name, len(o.Value))
		h.Write(o.Value)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
