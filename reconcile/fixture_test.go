package reconcile

import (
	"context"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/reconcile")

// goldenDir holds this package's golden files.
const goldenDir = "../testdata/reconcile"

// checkGolden compares got with the golden file name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got; run with -update if intended):\n%s", path, diff)
	}
}

// tailnetCmp compares Tailnets: netip values by ==, empty and nil alike,
// DNS records as a set.
var tailnetCmp = cmp.Options{
	cmpopts.SortSlices(func(a, b schema.DNSRecord) bool { return recordName(a) < recordName(b) }),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmpopts.EquateEmpty(),
	cmpopts.IgnoreFields(schema.Tailnet{}, "Source"),
}

func hash(c byte) string {
	h := make([]byte, 64)
	for i := range h {
		h[i] = "0123456789abcdef"[(int(c)+i)%16]
	}
	return "sha256:" + string(h)
}

// sampleTailnet is a small tailnet using every kind of object, in canonical
// form (what LoadApplied returns).
func sampleTailnet() *schema.Tailnet {
	return &schema.Tailnet{
		Settings: schema.Settings{
			Name:             "Example",
			Domain:           "tail.example.internal",
			IPv4:             netip.MustParsePrefix("100.64.0.0/10"),
			NodeKeyExpiry:    180 * 24 * time.Hour,
			EphemeralTimeout: 30 * time.Minute,
			SSH:              true,
			FileSharing:      true,
		},
		Users: map[string]schema.User{
			"alice@example.com": {Login: "alice@example.com", Name: "Alice", Role: schema.RoleOwner},
			"bob@example.com":   {Login: "bob@example.com", Name: "Bob", Role: schema.RoleMember},
		},
		DNS: schema.DNS{
			MagicDNS:      true,
			Nameservers:   []netip.Addr{netip.MustParseAddr("9.9.9.9"), netip.MustParseAddr("1.1.1.1")},
			SplitDNS:      map[string][]netip.Addr{"corp.example.com": {netip.MustParseAddr("10.0.0.53")}},
			SearchDomains: []string{"example.com"},
			Records: []schema.DNSRecord{
				{Name: "nas.example.internal", Type: "A", Value: netip.MustParseAddr("192.168.1.10")},
				{Name: "nas.example.internal", Type: "AAAA", Value: netip.MustParseAddr("fd00::10")},
			},
		},
		Routes: map[string][]netip.Prefix{
			"tag:router/router": {netip.MustParsePrefix("192.168.1.0/24")},
			"tag:router":        {netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12")},
		},
		AuthKeys: map[string]schema.AuthKey{
			"servers": {Name: "servers", Tags: []string{"tag:server"}, Reusable: true, Preauthorized: true, SecretHash: hash('a')},
			"ci": {Name: "ci", Tags: []string{"tag:ci"}, Ephemeral: true, Preauthorized: true,
				Expires: time.Date(2027, 1, 31, 12, 0, 0, 0, time.UTC), Uses: 10, SecretHash: hash('b')},
			"bob-laptop": {Name: "bob-laptop", User: "bob@example.com", SecretHash: hash('c')},
		},
		APIKeys: map[string]schema.APIKey{
			"deploy": {Name: "deploy", Role: "admin", SecretHash: hash('d')},
		},
		Login: schema.Login{OIDC: &schema.OIDC{Issuer: "https://id.example.com", ClientID: "tailplane",
			Scopes: []string{"openid", "email"}, EmailClaim: "email"}},
		Policy: schema.Policy{
			Groups:    map[string][]string{"group:eng": {"alice@example.com", "bob@example.com"}},
			TagOwners: map[string][]string{"tag:server": {"alice@example.com"}, "tag:ci": {"group:eng"}, "tag:router": {"alice@example.com"}},
			Hosts:     map[string]string{"db": "10.0.0.5"},
			ACLs: []schema.ACL{
				{Action: "accept", Src: []string{"autogroup:member"}, Dst: []string{"*:*"}},
				{Action: "accept", Src: []string{"tag:server"}, Dst: []string{"tag:server:22,80,443"}},
			},
			Grants: []schema.Grant{{
				Src: []string{"group:eng"}, Dst: []string{"tag:server"}, IP: []string{"tcp:5432"},
				App: map[string][]json.RawMessage{"example.com/cap/db": {json.RawMessage(`{"role":"ro"}`)}},
			}},
			AutoApprovers: schema.AutoApprovers{
				Routes:   map[string][]string{"10.0.0.0/8": {"tag:router"}},
				ExitNode: []string{"tag:router"},
			},
			SSH:       []schema.SSHRule{{Action: "accept", Src: []string{"group:eng"}, Dst: []string{"tag:server"}, Users: []string{"root"}}},
			NodeAttrs: []schema.NodeAttr{{Target: []string{"*"}, Attr: []string{"funnel"}}},
			Tests:     []schema.ACLTest{{Src: "bob@example.com", Accept: []string{"tag:server:22"}}},
			SSHTests:  []schema.SSHTest{{Src: "alice@example.com", Dst: []string{"tag:server"}, Accept: []string{"root"}}},
			IPSets:    map[string][]string{"ipset:office": {"192.168.1.0/24"}},
			Postures:  map[string][]string{"posture:latest": {"node:tsVersion >= '1.60'"}},

			RandomizeClientPort: true,
			DisableIPv4:         true,
			OneCGNATRoute:       "mullvad",
			DERPMap:             json.RawMessage(`{"OmitDefaultRegions":true}`),
		},
	}
}

// openStore opens a fresh database in a temporary state directory.
func openStore(t testing.TB) (*store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, dir
}

// testNode is a registered node for the store.
type testNode struct {
	name, user, authKey string
	tags                []string
	loggedOut           bool
}

// addNodes registers nodes in the store, as the control server would.
func addNodes(t *testing.T, st *store.Store, nodes ...testNode) {
	t.Helper()
	for _, n := range nodes {
		err := st.SaveNode(context.Background(), &store.Node{
			StableID: "stable-" + n.name, MachineKey: "mkey:" + n.name, NodeKey: "nodekey:" + n.name,
			GivenName: n.name, Hostname: n.name, UserLogin: n.user, Tags: nonNil(n.tags),
			AuthKey: n.authKey, CreatedAt: time.Now(), LoggedOut: n.loggedOut,
		})
		if err != nil {
			t.Fatalf("adding node %s: %v", n.name, err)
		}
	}
}
