package schema

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSettingsWithDefaults: zero fields get the defaults their docs name,
// set ones are kept, and a loaded tailnet already has them.
func TestSettingsWithDefaults(t *testing.T) {
	custom := Settings{Name: "n", Domain: "tail.example.com", IPv4: netip.MustParsePrefix("100.100.0.0/16"),
		IPv6: netip.MustParsePrefix("fd7a:115c:a1e0:1::/64"), NodeKeyExpiry: time.Hour, EphemeralTimeout: time.Minute, SSH: true}
	for _, tt := range []struct {
		name string
		in   Settings
		want Settings
	}{
		{"zero", Settings{}, Settings{Domain: DefaultDomain, IPv4: DefaultIPv4, IPv6: DefaultIPv6, EphemeralTimeout: DefaultEphemeralTimeout}},
		{"all set", custom, custom},
	} {
		if diff := cmp.Diff(tt.want, tt.in.WithDefaults(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Errorf("%s: WithDefaults (-want +got):\n%s", tt.name, diff)
		}
	}
	tn, diags := LoadBytes(context.Background(), "policy.hujson", []byte(`{}`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if diff := cmp.Diff(tn.Settings.WithDefaults(), tn.Settings, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("a loaded tailnet lacks defaults (-with +loaded):\n%s", diff)
	}
}
