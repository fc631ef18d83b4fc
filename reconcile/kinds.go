package reconcile

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"github.com/tailplane/tailplane/schema"
)

// kindSpec describes one kind of object for both directions: encode lists
// the objects of a Tailnet (Desired), decode sets one object back into a
// Tailnet (LoadApplied). Specs are built by singleton, entries, list and
// policyKind, which take both directions over one JSON value type, so a
// kind cannot be written without being read back, or the other way round.
type kindSpec struct {
	kind Kind
	// encode calls add with the name and JSON value of each object of this
	// kind in t, in any order.
	encode func(t *schema.Tailnet, add func(name string, v any))
	// decode sets the object named name, with its canonical JSON value,
	// into t. Values with fields this tailplane does not know are refused.
	decode func(t *schema.Tailnet, name string, value json.RawMessage) error
}

// kinds describes every kind, in plan order. Adding a kind here is all
// Desired, LoadApplied and plan ordering need.
var kinds = []kindSpec{
	singleton(KindTailnet,
		// Absent in state written before they existed: the defaults.
		func() settingsValue { return settingsValue{SSH: true, FileSharing: true} },
		encodeSettings, decodeSettings),
	singleton(KindDNS, func() dnsValue { return dnsValue{} }, encodeDNS, decodeDNS),
	list(KindDNSRecord, func(t *schema.Tailnet) *[]schema.DNSRecord { return &t.DNS.Records },
		recordName, encodeDNSRecord, decodeDNSRecord),
	entries(KindUser, func(t *schema.Tailnet) *map[string]schema.User { return &t.Users },
		func(_ string, u schema.User) userValue { return userValue{Name: u.Name, Role: string(u.Role)} },
		func(login string, v userValue) (schema.User, error) {
			return schema.User{Login: login, Name: v.Name, Role: schema.Role(v.Role)}, nil
		}),
	entries(KindAuthKey, func(t *schema.Tailnet) *map[string]schema.AuthKey { return &t.AuthKeys },
		encodeAuthKey, decodeAuthKey),
	entries(KindAPIKey, func(t *schema.Tailnet) *map[string]schema.APIKey { return &t.APIKeys },
		func(_ string, k schema.APIKey) apiKeyValue {
			return apiKeyValue{Role: k.Role, SecretHash: k.SecretHash}
		},
		func(name string, v apiKeyValue) (schema.APIKey, error) {
			return schema.APIKey{Name: name, Role: v.Role, SecretHash: v.SecretHash}, nil
		}),
	entries(KindRoute, func(t *schema.Tailnet) *map[string][]netip.Prefix { return &t.Routes },
		encodeRoutes, decodeRoutes),
	optional(KindLogin, oidcName, encodeOIDC, decodeOIDC),
	// Policy lists are stored when present, even empty: Tailscale reads
	// "acls": [] (deny everything) differently from no acls (allow all).
	stringLists(KindGroup, func(p *schema.Policy) *map[string][]string { return &p.Groups }),
	stringLists(KindTagOwner, func(p *schema.Policy) *map[string][]string { return &p.TagOwners }),
	entries(KindHost, func(t *schema.Tailnet) *map[string]string { return &t.Policy.Hosts },
		func(_ string, addr string) string { return addr },
		func(_ string, addr string) (string, error) { return addr, nil }),
	stringLists(KindIPSet, func(p *schema.Policy) *map[string][]string { return &p.IPSets }),
	stringLists(KindPosture, func(p *schema.Policy) *map[string][]string { return &p.Postures }),
	policyKind(),
}

// kindOrder is the order kinds appear in a plan.
var kindOrder = func() []Kind {
	order := make([]Kind, len(kinds))
	for i, k := range kinds {
		order[i] = k.kind
	}
	return order
}()

// kindSpecs finds a kind's spec by name.
var kindSpecs = func() map[Kind]*kindSpec {
	m := make(map[Kind]*kindSpec, len(kinds))
	for i := range kinds {
		m[kinds[i].kind] = &kinds[i]
	}
	return m
}()

// singleton is a kind with exactly one object, named settingsName. zero
// gives the value decoding starts from, so fields absent from older state
// keep their defaults.
func singleton[J any](k Kind, zero func() J, enc func(*schema.Tailnet) J, dec func(*schema.Tailnet, J) error) kindSpec {
	return kindSpec{
		kind:   k,
		encode: func(t *schema.Tailnet, add func(string, any)) { add(settingsName, enc(t)) },
		decode: func(t *schema.Tailnet, _ string, value json.RawMessage) error {
			v := zero()
			if err := strictUnmarshal(value, &v); err != nil {
				return err
			}
			return dec(t, v)
		},
	}
}

// optional is a kind with at most one object, named name: enc reports
// whether t has it.
func optional[J any](k Kind, name string, enc func(*schema.Tailnet) (J, bool), dec func(*schema.Tailnet, J) error) kindSpec {
	return kindSpec{
		kind: k,
		encode: func(t *schema.Tailnet, add func(string, any)) {
			if v, ok := enc(t); ok {
				add(name, v)
			}
		},
		decode: func(t *schema.Tailnet, got string, value json.RawMessage) error {
			if got != name {
				return fmt.Errorf("unknown %s object %q (want %q)", k, got, name)
			}
			var v J
			if err := strictUnmarshal(value, &v); err != nil {
				return err
			}
			return dec(t, v)
		},
	}
}

// entries is a kind with one object per entry of a map in the Tailnet,
// named by the entry's key; field gives the map, enc and dec convert an
// entry to and from its JSON value.
func entries[V, J any](k Kind, field func(*schema.Tailnet) *map[string]V, enc func(name string, v V) J, dec func(name string, v J) (V, error)) kindSpec {
	return kindSpec{
		kind: k,
		encode: func(t *schema.Tailnet, add func(string, any)) {
			for name, v := range *field(t) {
				add(name, enc(name, v))
			}
		},
		decode: func(t *schema.Tailnet, name string, value json.RawMessage) error {
			var j J
			if err := strictUnmarshal(value, &j); err != nil {
				return err
			}
			v, err := dec(name, j)
			if err != nil {
				return err
			}
			setMap(field(t), name, v)
			return nil
		},
	}
}

// stringLists is entries for a policy map of string lists, kept as
// declared (an empty list stays an empty list).
func stringLists(k Kind, field func(*schema.Policy) *map[string][]string) kindSpec {
	return entries(k, func(t *schema.Tailnet) *map[string][]string { return field(&t.Policy) },
		func(_ string, v []string) []string { return nonNil(v) },
		func(_ string, v []string) ([]string, error) { return v, nil })
}

// list is a kind with one object per element of a list in the Tailnet,
// named by name(element). Decoding appends, so the list comes back in
// object order.
func list[V, J any](k Kind, field func(*schema.Tailnet) *[]V, name func(V) string, enc func(V) J, dec func(J) (V, error)) kindSpec {
	return kindSpec{
		kind: k,
		encode: func(t *schema.Tailnet, add func(string, any)) {
			for _, v := range *field(t) {
				add(name(v), enc(v))
			}
		},
		decode: func(t *schema.Tailnet, _ string, value json.RawMessage) error {
			var j J
			if err := strictUnmarshal(value, &j); err != nil {
				return err
			}
			v, err := dec(j)
			if err != nil {
				return err
			}
			l := field(t)
			*l = append(*l, v)
			return nil
		},
	}
}

// policyKind is KindPolicy: one object per policy key of policyKeys that
// is set, named by the key, its value the field as schema encodes it.
func policyKind() kindSpec {
	return kindSpec{
		kind: KindPolicy,
		encode: func(t *schema.Tailnet, add func(string, any)) {
			for _, key := range policyKeys {
				if v := reflect.ValueOf(t.Policy.Field(key)).Elem(); !v.IsZero() {
					add(key, v.Interface())
				}
			}
		},
		decode: func(t *schema.Tailnet, name string, value json.RawMessage) error {
			dst := t.Policy.Field(name)
			if dst == nil || !slices.Contains(policyKeys, name) {
				return fmt.Errorf("unknown policy key")
			}
			return strictUnmarshal(value, dst)
		},
	}
}

// The JSON values of tailplane's own kinds. Every field is always present so
// that a plan shows "role: \"\" → \"admin\"" rather than a field appearing.

type settingsValue struct {
	Name             string `json:"name"`
	Domain           string `json:"domain"`
	IPv4             string `json:"ipv4"`             // "" means the default
	IPv6             string `json:"ipv6"`             // "" means the default
	NodeKeyExpiry    string `json:"nodeKeyExpiry"`    // formatDuration
	EphemeralTimeout string `json:"ephemeralTimeout"` // formatDuration
	// SSH and FileSharing are absent from state written before they
	// existed; decoding takes absent as true, their default.
	SSH         bool `json:"ssh"`
	FileSharing bool `json:"fileSharing"`
	// DeviceApproval is left out when false, so state applied before it
	// existed (where it is absent, meaning false) plans no change.
	DeviceApproval bool `json:"deviceApproval,omitempty"`
}

type userValue struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

type authKeyValue struct {
	User          string   `json:"user"`
	Tags          []string `json:"tags"` // never null
	Reusable      bool     `json:"reusable"`
	Ephemeral     bool     `json:"ephemeral"`
	Preauthorized bool     `json:"preauthorized"`
	Expires       string   `json:"expires"` // RFC 3339 in UTC; "" means never
	Uses          int      `json:"uses"`
	SecretHash    string   `json:"secretHash"`
}

type apiKeyValue struct {
	Role       string `json:"role"`
	SecretHash string `json:"secretHash"`
}

type dnsValue struct {
	MagicDNS      bool                `json:"magicDNS"`
	Nameservers   []string            `json:"nameservers"`     // in declared order, never null
	SplitDNS      map[string][]string `json:"splitDNS"`        // never null
	SearchDomains []string            `json:"searchDomains"`   // in declared order, never null
	HTTPS         bool                `json:"https,omitempty"` // omitted when off, so state applied before it existed diffs clean
}

type dnsRecordValue struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

func encodeSettings(t *schema.Tailnet) settingsValue {
	s := t.Settings
	return settingsValue{
		Name:             s.Name,
		Domain:           s.Domain,
		IPv4:             prefixString(s.IPv4),
		IPv6:             prefixString(s.IPv6),
		NodeKeyExpiry:    formatDuration(s.NodeKeyExpiry),
		EphemeralTimeout: formatDuration(s.EphemeralTimeout),
		SSH:              s.SSH,
		FileSharing:      s.FileSharing,
		DeviceApproval:   s.DeviceApproval,
	}
}

func decodeSettings(t *schema.Tailnet, v settingsValue) error {
	var err error
	s := &t.Settings
	s.Name, s.Domain = v.Name, v.Domain
	s.SSH, s.FileSharing, s.DeviceApproval = v.SSH, v.FileSharing, v.DeviceApproval
	if s.IPv4, err = parsePrefix(v.IPv4); err != nil {
		return err
	}
	if s.IPv6, err = parsePrefix(v.IPv6); err != nil {
		return err
	}
	if s.NodeKeyExpiry, err = parseDuration(v.NodeKeyExpiry); err != nil {
		return err
	}
	s.EphemeralTimeout, err = parseDuration(v.EphemeralTimeout)
	return err
}

func encodeDNS(t *schema.Tailnet) dnsValue {
	d := t.DNS
	v := dnsValue{
		MagicDNS:      d.MagicDNS,
		Nameservers:   addrStrings(d.Nameservers),
		SplitDNS:      map[string][]string{},
		SearchDomains: nonNil(d.SearchDomains),
		HTTPS:         d.HTTPS,
	}
	for dom, addrs := range d.SplitDNS {
		v.SplitDNS[dom] = addrStrings(addrs)
	}
	return v
}

func decodeDNS(t *schema.Tailnet, v dnsValue) error {
	var err error
	t.DNS.MagicDNS, t.DNS.HTTPS = v.MagicDNS, v.HTTPS
	if t.DNS.Nameservers, err = parseAddrs(v.Nameservers); err != nil {
		return err
	}
	t.DNS.SearchDomains = nilIfEmpty(v.SearchDomains)
	for dom, ss := range v.SplitDNS {
		addrs, err := parseAddrs(ss)
		if err != nil {
			return err
		}
		setMap(&t.DNS.SplitDNS, dom, addrs)
	}
	return nil
}

func encodeDNSRecord(r schema.DNSRecord) dnsRecordValue {
	return dnsRecordValue{Name: r.Name, Type: r.Type, Value: addrString(r.Value)}
}

func decodeDNSRecord(v dnsRecordValue) (schema.DNSRecord, error) {
	r := schema.DNSRecord{Name: v.Name, Type: v.Type}
	if v.Value != "" {
		var err error
		if r.Value, err = netip.ParseAddr(v.Value); err != nil {
			return schema.DNSRecord{}, err
		}
	}
	return r, nil
}

func encodeAuthKey(_ string, k schema.AuthKey) authKeyValue {
	v := authKeyValue{
		User:          k.User,
		Tags:          nonNil(k.Tags),
		Reusable:      k.Reusable,
		Ephemeral:     k.Ephemeral,
		Preauthorized: k.Preauthorized,
		Uses:          k.Uses,
		SecretHash:    k.SecretHash,
	}
	if !k.Expires.IsZero() {
		v.Expires = k.Expires.UTC().Format(time.RFC3339Nano)
	}
	return v
}

func decodeAuthKey(name string, v authKeyValue) (schema.AuthKey, error) {
	k := schema.AuthKey{
		Name: name, User: v.User, Tags: nilIfEmpty(v.Tags),
		Reusable: v.Reusable, Ephemeral: v.Ephemeral, Preauthorized: v.Preauthorized,
		Uses: v.Uses, SecretHash: v.SecretHash,
	}
	if v.Expires != "" {
		var err error
		if k.Expires, err = time.Parse(time.RFC3339Nano, v.Expires); err != nil {
			return schema.AuthKey{}, err
		}
	}
	return k, nil
}

func encodeRoutes(_ string, prefixes []netip.Prefix) []string {
	ps := make([]string, 0, len(prefixes))
	for _, p := range prefixes {
		ps = append(ps, prefixString(p))
	}
	return ps
}

func decodeRoutes(_ string, v []string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, s := range v {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// oidcName is the name of the KindLogin object.
const oidcName = "oidc"

// oidcValue is the stored form of `login.oidc`.
type oidcValue struct {
	Issuer     string   `json:"issuer"`
	ClientID   string   `json:"clientID"`
	Scopes     []string `json:"scopes"`
	EmailClaim string   `json:"emailClaim"`
}

func encodeOIDC(t *schema.Tailnet) (oidcValue, bool) {
	o := t.Login.OIDC
	if o == nil {
		return oidcValue{}, false
	}
	return oidcValue{Issuer: o.Issuer, ClientID: o.ClientID, Scopes: nonNil(o.Scopes), EmailClaim: o.EmailClaim}, true
}

func decodeOIDC(t *schema.Tailnet, v oidcValue) error {
	t.Login.OIDC = &schema.OIDC{Issuer: v.Issuer, ClientID: v.ClientID, Scopes: v.Scopes, EmailClaim: v.EmailClaim}
	return nil
}
