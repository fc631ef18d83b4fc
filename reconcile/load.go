package reconcile

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"

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

// tailnetFromObjects is the inverse of Desired, by the decode side of kinds.
func tailnetFromObjects(objs []Object) (*schema.Tailnet, error) {
	t := &schema.Tailnet{}
	for _, o := range objs {
		err := fmt.Errorf("unknown kind")
		if k := kindSpecs[o.Kind]; k != nil {
			err = k.decode(t, o.Name, o.Value)
		}
		if err != nil {
			return nil, fmt.Errorf("reconcile: applied state: %s %q: %w (hint: the database may come from a newer tailplane)", o.Kind, o.Name, err)
		}
	}
	slices.SortFunc(t.DNS.Records, func(a, b schema.DNSRecord) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Type, b.Type), a.Value.Compare(b.Value))
	})
	return t, nil
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
