package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPolicyTestsAsDocumented checks `tests` and `sshTests` against what
// Tailscale's policy syntax reference promises: a test's src is a user,
// group, tag or a host that maps to an IP address, never a wildcard or a
// range; a destination is "host:port" with a single numeric port, an IPv6
// address written "[1:2:3::4]:80"; without proto a test checks "for either
// TCP or UDP access"; ICMP tests use port 0, and ICMP goes wherever other
// traffic between the pair may go. want lists the paths of the errors that
// Validate must report (none: the policy is accepted).
func TestPolicyTestsAsDocumented(t *testing.T) {
	const base = `"tagOwners": {"tag:db": [], "tag:web": [], "tag:router": []},
		"hosts": {"office": "192.168.1.0/24", "dbhost": "100.64.0.10"},
		"acls": [
			{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:db:5432"]},
			{"action": "accept", "src": ["bob@example.com"], "dst": ["tag:web:53"], "proto": "udp"},
		],
		"ssh": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:db"], "users": ["root"]}],`
	tests := []struct {
		name  string
		tests string // the "tests" and "sshTests" entries
		want  []string
	}{
		{"IPv6 destination in brackets",
			`"tests": [{"src": "alice@example.com", "accept": ["[fd7a:115c:a1e0::10]:5432"], "deny": ["[fd7a:115c:a1e0::10]:22", "[fd7a:115c:a1e0::11]:5432"]}]`, nil},
		{"IPv6 destination without brackets",
			`"tests": [{"src": "alice@example.com", "accept": ["fd7a:115c:a1e0::10:5432"]}]`, []string{"tests[0].accept[0]"}},
		{"IPv6 destination refused",
			`"tests": [{"src": "bob@example.com", "accept": ["[fd7a:115c:a1e0::10]:5432"]}]`, []string{"tests[0].accept[0]"}},
		{"IPv6 source",
			`"tests": [{"src": "fd7a:115c:a1e0::1", "accept": ["tag:db:5432"], "deny": ["tag:web:53"]}]`, nil},
		{"host alias of one address as source and destination",
			`"tests": [{"src": "dbhost", "deny": ["alice@example.com:22"]}, {"src": "alice@example.com", "accept": ["dbhost:5432"]}]`, nil},
		{"ICMP with port 0 follows the pair's access",
			`"tests": [{"src": "alice@example.com", "proto": "icmp", "accept": ["tag:db:0"], "deny": ["tag:web:0"]}]`, nil},
		{"ICMP where nothing is allowed",
			`"tests": [{"src": "bob@example.com", "proto": "icmp", "accept": ["tag:db:0"]}]`, []string{"tests[0].accept[0]"}},
		{"without proto UDP access counts",
			`"tests": [{"src": "bob@example.com", "accept": ["tag:web:53"]}, {"src": "bob@example.com", "deny": ["tag:web:53"]}]`, []string{"tests[1].deny[0]"}},
		{"with proto tcp UDP access does not count",
			`"tests": [{"src": "bob@example.com", "proto": "tcp", "deny": ["tag:web:53"]}]`, nil},
		{"wildcard source",
			`"tests": [{"src": "*", "deny": ["tag:web:22"]}]`, []string{"tests[0].src"}},
		{"CIDR source",
			`"tests": [{"src": "100.64.0.0/24", "deny": ["tag:web:22"]}]`, []string{"tests[0].src"}},
		{"host alias of a CIDR as source",
			`"tests": [{"src": "office", "deny": ["tag:web:22"]}]`, []string{"tests[0].src"}},
		{"autogroup:internet as source",
			`"tests": [{"src": "autogroup:internet", "deny": ["tag:web:22"]}]`, []string{"tests[0].src"}},
		{"SSH test from a wildcard",
			`"sshTests": [{"src": "*", "dst": ["tag:web"], "deny": ["root"]}]`, []string{"sshTests[0].src"}},
		{"SSH test from a CIDR",
			`"sshTests": [{"src": "100.64.0.0/24", "dst": ["tag:web"], "deny": ["root"]}]`, []string{"sshTests[0].src"}},
		{"SSH test from an address",
			`"sshTests": [{"src": "100.64.0.1", "dst": ["tag:db"], "accept": ["root"]}]`, nil},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			tn := load(t, `{`+base+tt.tests+`}`)
			_, diags := Validate(tn, smallNodes())
			var got []string
			for _, d := range diags.Errors() {
				got = append(got, d.Path)
			}
			slicesSort(got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("error paths (-want +got):\n%s\ndiagnostics: %v", diff, diags)
			}
		})
	}
}
