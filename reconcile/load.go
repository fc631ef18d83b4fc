package reconcile

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

// LoadApplied rebuilds the last applied Tailnet from the database, so a
// restarted server can serve it without the config repository. It equals
// the applied Tailnet except that DNS records come ordered by name, type and
// address, empty lists and maps are nil, and Source is nil.
// A database where nothing was applied yet gives a zero Tailnet.
func LoadApplied(ctx context.Context, st *store.Store) (*schema.Tailnet, error) {
	rows, err := st.ConfigObjects(ctx)
	if err != nil {
		return nil, err
	}
	return tailnetFromObjects(objectsFromStore(rows))
}

// tailnetFromObjects is the inverse of Desired.
func tailnetFromObjects(objs []Object) (*schema.Tailnet, error) {
	t := &schema.Tailnet{}
	p := &t.Policy
	for _, o := range objs {
		if err := decodeObject(t, p, o); err != nil {
			return nil, fmt.Errorf("reconcile: applied state: %s %q: %w (hint: the database may come from a newer tailplane)", o.Kind, o.Name, err)
		}
	}
	slices.SortFunc(t.DNS.Records, func(a, b schema.DNSRecord) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Type, b.Type), a.Value.Compare(b.Value))
	})
	return t, nil
}

func decodeObject(t *schema.Tailnet, p *schema.Policy, o Object) error {
	var err error
	switch o.Kind {
	case KindTailnet:
		v := settingsValue{SSH: true, FileSharing: true} // absent in older state: the defaults
		if err = strictUnmarshal(o.Value, &v); err != nil {
			return err
		}
		s := &t.Settings
		s.Name, s.Domain = v.Name, v.Domain
		s.SSH, s.FileSharing = v.SSH, v.FileSharing
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

	case KindDNS:
		var v dnsValue
		if err = strictUnmarshal(o.Value, &v); err != nil {
			return err
		}
		t.DNS.MagicDNS = v.MagicDNS
		if t.DNS.Nameservers, err = parseAddrs(v.Nameservers); err != nil {
			return err
		}
		t.DNS.SearchDomains = nilIfEmpty(v.SearchDomains)
		for dom, ss := range v.SplitDNS {
			addrs, err := parseAddrs(ss)
			if err != nil {
				return err
			}
			if t.DNS.SplitDNS == nil {
				t.DNS.SplitDNS = map[string][]netip.Addr{}
			}
			t.DNS.SplitDNS[dom] = addrs
		}
		return nil

	case KindDNSRecord:
		var v dnsRecordValue
		if err = strictUnmarshal(o.Value, &v); err != nil {
			return err
		}
		r := schema.DNSRecord{Name: v.Name, Type: v.Type}
		if v.Value != "" {
			if r.Value, err = netip.ParseAddr(v.Value); err != nil {
				return err
			}
		}
		t.DNS.Records = append(t.DNS.Records, r)
		return nil

	case KindUser:
		var v userValue
		if err = strictUnmarshal(o.Value, &v); err != nil {
			return err
		}
		setMap(&t.Users, o.Name, schema.User{Login: o.Name, Name: v.Name, Role: schema.Role(v.Role)})
		return nil

	case KindAuthKey:
		var v authKeyValue
		if err = strictUnmarshal(o.Value, &v); err != nil {
			return err
		}
		k := schema.AuthKey{
			Name: o.Name, User: v.User, Tags: nilIfEmpty(v.Tags),
			Reusable: v.Reusable, Ephemeral: v.Ephemeral, Preauthorized: v.Preauthorized,
			Uses: v.Uses, SecretHash: v.SecretHash,
		}
		if v.Expires != "" {
			if k.Expires, err = time.Parse(time.RFC3339Nano, v.Expires); err != nil {
				return err
			}
		}
		setMap(&t.AuthKeys, o.Name, k)
		return nil

	case KindAPIKey:
		var v apiKeyValue
		if err = strictUnmarshal(o.Value, &v); err != nil {
			return err
		}
		setMap(&t.APIKeys, o.Name, schema.APIKey{Name: o.Name, Role: v.Role, SecretHash: v.SecretHash})
		return nil

	case KindRoute:
		var v []string
		if err = strictUnmarshal(o.Value, &v); err != nil {
			return err
		}
		var ps []netip.Prefix
		for _, s := range v {
			pfx, err := parsePrefix(s)
			if err != nil {
				return err
			}
			ps = append(ps, pfx)
		}
		setMap(&t.Routes, o.Name, ps)
		return nil

	case KindGroup:
		return decodeList(o, &p.Groups)
	case KindTagOwner:
		return decodeList(o, &p.TagOwners)
	case KindIPSet:
		return decodeList(o, &p.IPSets)
	case KindPosture:
		return decodeList(o, &p.Postures)
	case KindHost:
		var v string
		if err = strictUnmarshal(o.Value, &v); err != nil {
			return err
		}
		setMap(&p.Hosts, o.Name, v)
		return nil

	case KindPolicy:
		return decodePolicyKey(p, o)
	}
	return fmt.Errorf("unknown kind")
}

func decodePolicyKey(p *schema.Policy, o Object) error {
	dst := p.Field(o.Name)
	if dst == nil || !slices.Contains(policyKeys, o.Name) {
		return fmt.Errorf("unknown policy key")
	}
	return strictUnmarshal(o.Value, dst)
}

func decodeList(o Object, m *map[string][]string) error {
	var v []string
	if err := strictUnmarshal(o.Value, &v); err != nil {
		return err
	}
	setMap(m, o.Name, v)
	return nil
}

// strictUnmarshal decodes v, refusing fields this tailplane does not know:
// dropping them silently would lose applied state.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func setMap[V any](m *map[string]V, k string, v V) {
	if *m == nil {
		*m = map[string]V{}
	}
	(*m)[k] = v
}

func parsePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	return netip.ParsePrefix(s)
}

func parseAddrs(ss []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range ss {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
