package policy

import (
	"context"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tailplane/tailplane/schema"
)

// load loads a policy document through the real loader, failing the test
// on loader errors.
func load(t testing.TB, doc string) *schema.Tailnet {
	t.Helper()
	tn, diags := schema.LoadBytes(context.Background(), "policy.hujson", []byte(doc))
	if diags.HasErrors() {
		t.Fatalf("loading the test policy: %v", diags)
	}
	if tn.Users == nil {
		tn.Users = map[string]schema.User{}
	}
	for _, u := range []schema.User{
		{Login: "alice@example.com", Role: schema.RoleOwner},
		{Login: "bob@example.com", Role: schema.RoleMember},
		{Login: "carol@example.org", Role: schema.RoleAdmin},
	} {
		tn.Users[u.Login] = u
	}
	return tn
}

const basePolicy = `
	"groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
	"tagOwners": {"tag:db": ["group:eng"], "tag:web": ["tag:db"], "tag:router": ["alice@example.com"]},
	"hosts": {"office": "192.168.1.0/24"},
`

func TestCompileDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // "path: message", errors only
	}{
		{"valid", `{` + basePolicy + `"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432", "office:*"]}]}`, nil},
		{"undefined group", `{` + basePolicy + `"acls": [{"action": "accept", "src": ["group:ops"], "dst": ["*:*"]}]}`,
			[]string{`acls[0].src[0]: src=group "group:ops" is not defined`}},
		{"undefined tag in dst", `{` + basePolicy + `"acls": [{"action": "accept", "src": ["*"], "dst": ["tag:db:22", "tag:nope:22"]}]}`,
			[]string{`acls[0].dst[1]: dst="tag:nope": tag not found: "tag:nope"`}},
		{"named port", `{` + basePolicy + `"acls": [{"action": "accept", "src": ["*"], "dst": ["tag:db:ssh"]}]}`,
			[]string{`acls[0].dst[0]: dst="tag:db:ssh": port range "ssh": invalid first integer`}},
		{"port zero", `{` + basePolicy + `"grants": [{"src": ["*"], "dst": ["tag:db"], "ip": ["tcp:0"]}]}`,
			[]string{`grants[0].ip[0]: port range "0": first port must be >0, or use '*' for wildcard`}},
		{"undefined host", `{` + basePolicy + `"acls": [{"action": "accept", "src": ["*"], "dst": ["nas:445"]}]}`,
			[]string{`acls[0].dst[0]: dst="nas": host "nas" is not defined in hosts`}},
		{"bad cidr", `{` + basePolicy + `"acls": [{"action": "accept", "src": ["10.0.0.0/33"], "dst": ["*:*"]}]}`,
			[]string{`acls[0].src[0]: src="10.0.0.0/33": invalid CIDR`}},
		{"undefined ipset", `{` + basePolicy + `"acls": [{"action": "accept", "src": ["ipset:nope"], "dst": ["*:*"]}]}`,
			[]string{`acls[0].src[0]: src=ipset "ipset:nope" is not defined`}},
		{"reversed port range", `{` + basePolicy + `"acls": [{"action": "accept", "src": ["*"], "dst": ["tag:db:30-20"]}]}`,
			[]string{`acls[0].dst[0]: dst="tag:db:30-20": port range "30-20": last port is smaller than the first`}},
		{"port out of range", `{` + basePolicy + `"acls": [{"action": "accept", "src": ["*"], "dst": ["tag:db:70000"]}]}`,
			[]string{`acls[0].dst[0]: dst="tag:db:70000": port range "70000": invalid first integer`}},
		{"bad ip", `{` + basePolicy + `"acls": [{"action": "accept", "src": ["10.0.0.256"], "dst": ["*:*"]}]}`,
			[]string{`acls[0].src[0]: src="10.0.0.256": invalid address`}},
		{"tag without owner in src", `{` + basePolicy + `"acls": [{"action": "accept", "src": ["tag:ci"], "dst": ["*:*"]}]}`,
			[]string{`acls[0].src[0]: src=tag not found: "tag:ci"`}},
		{"bad proto", `{` + basePolicy + `"acls": [{"action": "accept", "proto": "tcpp", "src": ["*"], "dst": ["*:*"]}]}`,
			[]string{`acls[0].proto: proto "tcpp" is not a protocol name or a number in 0-255`}},
		{"nested group", `{"groups": {"group:a": ["alice@example.com"], "group:b": ["group:a"]}}`,
			[]string{`groups["group:b"][0]: "group:a": group members cannot be recursive`}},
		{"tag name", `{"tagOwners": {"tag:1db": ["alice@example.com"]}}`,
			[]string{`tagOwners["tag:1db"]: "tag:1db": tag names must start with a letter, after 'tag:'`}},
		{"self with tag source", `{` + basePolicy + `"acls": [{"action": "accept", "src": ["tag:db"], "dst": ["autogroup:self:*"]}]}`,
			[]string{`acls[0]: autogroup:self can only be used with users, groups, or supported autogroups`}},
		{"grant without ip or app", `{` + basePolicy + `"grants": [{"src": ["*"], "dst": ["*"]}]}`,
			[]string{`grants[0]: ip and app can not both be empty`}},
		{"danger-all dst", `{` + basePolicy + `"grants": [{"src": ["*"], "dst": ["autogroup:danger-all"], "ip": ["*"]}]}`,
			[]string{`grants[0].dst[0]: cannot use autogroup:danger-all as a dst`}},
		{"grant to 0.0.0.0/0", `{` + basePolicy + `"grants": [{"src": ["*"], "dst": ["0.0.0.0/0"], "ip": ["*"]}]}`,
			[]string{`grants[0].dst[0]: dst "0.0.0.0/0": to allow all IP addresses, use "*" or "autogroup:internet"`}},
		{"tailscale cap", `{` + basePolicy + `"grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/secret": [{}]}}]}`,
			[]string{`grants[0].app["tailscale.com/cap/secret"]: capability name must not be in the tailscale.com domain`}},
		{"ssh users missing", `{` + basePolicy + `"ssh": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:db"]}]}`,
			[]string{`ssh[0].users: users must be specified`}},
		{"ssh action", `{` + basePolicy + `"ssh": [{"action": "deny", "src": ["group:eng"], "dst": ["tag:db"], "users": ["root"]}]}`,
			[]string{`ssh[0].action: "deny" is not a valid action`}},
		{"ssh host dst", `{` + basePolicy + `"ssh": [{"action": "accept", "src": ["group:eng"], "dst": ["office"], "users": ["root"]}]}`,
			[]string{`ssh[0].dst[0]: invalid dst "office"`}},
		{"ssh foreign domain", `{` + basePolicy + `"ssh": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:db"], "users": ["localpart:*@example.org"]}]}`,
			[]string{`ssh[0].users[0]: example.org is not associated with this Tailnet and cannot be used in user:*@<domain> expressions`}},
		{"ssh negative check period", `{` + basePolicy + `"ssh": [{"action": "check", "checkPeriod": "-1m", "src": ["group:eng"], "dst": ["tag:db"], "users": ["root"]}]}`,
			[]string{`ssh[0].checkPeriod: checkPeriod -1m0s must be a positive duration`}},
		{"nodeAttrs target", `{` + basePolicy + `"nodeAttrs": [{"target": ["tag:none"], "attr": ["funnel"]}]}`,
			[]string{`nodeAttrs[0].target[0]: tag not found: "tag:none"`}},
		{"ipPool reserved", `{` + basePolicy + `"nodeAttrs": [{"target": ["tag:db"], "ipPool": ["100.100.100.0/24"]}]}`,
			[]string{`nodeAttrs[0].ipPool[0]: IPPool(100.100.100.0/24): network within reserved range`}},
		{"autoApprover", `{` + basePolicy + `"autoApprovers": {"routes": {"10.0.0.0/8": ["tag:nope"]}, "exitNode": ["10.0.0.1"]}}`,
			[]string{`autoApprovers.exitNode[0]: "10.0.0.1" cannot approve routes`, `autoApprovers.routes["10.0.0.0/8"][0]: tag not found: "tag:nope"`}},
		{"test syntax", `{` + basePolicy + `"tests": [{"src": "alice@example.com"}, {"src": "", "accept": ["tag:db:1-2"]}]}`,
			[]string{`tests[0]: test has neither accept nor deny`, `tests[1].accept[0]: dst "tag:db:1-2": test ports are a single number in 0-65535`, `tests[1].src: test src must be specified`}},
		{"ssh test dst", `{` + basePolicy + `"sshTests": [{"src": "alice@example.com", "dst": ["100.64.0.0/24"], "accept": ["root"]}]}`,
			[]string{`sshTests[0].dst[0]: SSH tests dst contains disallowed element "100.64.0.0/24"`}},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			_, diags := Compile(load(t, tt.doc))
			var got []string
			for _, d := range diags.Errors() {
				got = append(got, d.Path+": "+d.Message)
			}
			slicesSort(got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Compile diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDiagnosticPositions checks that diagnostics point into the file.
func TestDiagnosticPositions(t *testing.T) {
	doc := "{\n  \"acls\": [\n    {\"action\": \"accept\", \"src\": [\"group:nope\"], \"dst\": [\"*:*\"]},\n  ],\n}\n"
	_, diags := Compile(load(t, doc))
	if len(diags) != 1 {
		t.Fatalf("got %d diagnostics, want 1: %v", len(diags), diags)
	}
	if got := diags[0].Pos; got.File != "policy.hujson" || got.Line != 3 {
		t.Errorf("diagnostic at %v, want policy.hujson line 3", got)
	}
}

func TestApproveRoutes(t *testing.T) {
	p, diags := Compile(load(t, `{`+basePolicy+`"autoApprovers": {
		"routes": {"10.0.0.0/8": ["tag:router"], "192.168.0.0/16": ["group:eng"], "0.0.0.0/0": ["tag:router"]},
		"exitNode": ["alice@example.com"],
	}}`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	tests := []struct {
		name string
		node Node
		want []netip.Prefix
	}{
		// A routes entry approves every route inside it, so 0.0.0.0/0
		// approves all IPv4 subnets (but not the exit route itself).
		{"tagged router, nested prefix", Node{Tags: []string{"tag:router"}, RoutableIPs: pfx("10.1.0.0/16", "172.16.0.0/12", "fd00::/8")}, pfx("10.1.0.0/16", "172.16.0.0/12")},
		{"routes entry does not approve exit", Node{Tags: []string{"tag:router"}, RoutableIPs: pfx("0.0.0.0/0", "::/0")}, nil},
		{"exitNode approver", Node{User: "alice@example.com", RoutableIPs: pfx("0.0.0.0/0", "::/0", "192.168.5.0/24")}, pfx("0.0.0.0/0", "::/0", "192.168.5.0/24")},
		{"group member", Node{User: "bob@example.com", RoutableIPs: pfx("192.168.0.0/16", "10.0.0.0/8")}, pfx("192.168.0.0/16")},
		{"wider than approved", Node{User: "bob@example.com", RoutableIPs: pfx("192.168.0.0/15")}, nil},
		{"tagged node is not its user's", Node{User: "bob@example.com", Tags: []string{"tag:db"}, RoutableIPs: pfx("192.168.1.0/24")}, nil},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			got := p.ApproveRoutes(tt.node)
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("ApproveRoutes (-want +got):\n%s", diff)
			}
		})
	}
}

func slicesSort(s []string) { sort.Strings(s) }

func TestIPSets(t *testing.T) {
	p, diags := Compile(load(t, `{
		"hosts": {"nas": "10.0.0.5"},
		"ipsets": {
			"ipset:lan": ["10.0.0.0/24", "192.168.0.1-192.168.0.3"],
			"ipset:lan-but-nas": ["add ipset:lan", "remove nas"],
			"ipset:loop": ["add ipset:loop"],
			"ipset:bad": ["drop 10.0.0.1"],
		},
		"acls": [{"action": "accept", "src": ["ipset:lan-but-nas"], "dst": ["*:*"]}],
	}`))
	var got []string
	for _, d := range diags.Errors() {
		got = append(got, d.Path+": "+d.Message)
	}
	want := []string{
		`ipsets["ipset:bad"][0]: ipset operation "drop" is not add or remove`,
		`ipsets["ipset:loop"][0]: ipset "ipset:loop" refers back to "ipset:loop"`,
	}
	slicesSort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	set := p.sy.ipsets["ipset:lan-but-nas"]
	for addr, in := range map[string]bool{"10.0.0.4": true, "10.0.0.5": false, "192.168.0.2": true, "192.168.0.4": false} {
		if got := set.Contains(netip.MustParseAddr(addr)); got != in {
			t.Errorf("ipset:lan-but-nas contains %s = %v, want %v", addr, got, in)
		}
	}
}

// TestPostureFailsClosed: srcPosture cannot be evaluated, so the rule
// matches no source and a warning says so.
func TestPostureFailsClosed(t *testing.T) {
	p, diags := Compile(load(t, `{`+basePolicy+`"acls": [{"action": "accept", "src": ["*"], "srcPosture": ["posture:latest"], "dst": ["*:*"]}]}`))
	if diags.HasErrors() || len(diags) != 1 || diags[0].Path != "acls[0].srcPosture" || diags[0].Severity != schema.SevWarning {
		t.Fatalf("diagnostics = %v, want one warning at acls[0].srcPosture", diags)
	}
	res := p.Evaluate(smallNodes(), Options{})
	for _, n := range smallNodes() {
		if v := res.Node(n.ID); len(v.PacketFilter) != 0 || v.Peers.Len() != 0 {
			t.Errorf("node %s: filter %v, peers %v; want none", n.Name, v.PacketFilter, v.Peers.IDs())
		}
	}
}

func TestUndeclaredUsers(t *testing.T) {
	_, diags := Compile(load(t, `{
		"groups": {"group:eng": ["alice@example.com", "zed@example.com"]},
		"acls": [{"action": "accept", "src": ["group:eng", "yan@example.com"], "dst": ["xi@example.com:22", "alice@example.com:*"]}],
		"ssh": [{"action": "accept", "src": ["user:*@example.com"], "dst": ["alice@example.com"], "users": ["localpart:*@example.com"]}],
	}`))
	var got []string
	for _, d := range diags {
		if d.Severity != schema.SevWarning {
			t.Errorf("unexpected error: %v", d)
			continue
		}
		got = append(got, d.Path+": "+d.Message)
	}
	want := []string{
		`acls[0].dst[0]: user "xi@example.com" is not declared in users`,
		`acls[0].src[1]: user "yan@example.com" is not declared in users`,
		`groups["group:eng"][1]: user "zed@example.com" is not declared in users`,
	}
	slicesSort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}
