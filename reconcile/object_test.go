package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tailplane/tailplane/schema"
)

func TestDesiredObjects(t *testing.T) {
	objs := Desired(sampleTailnet())
	var b []byte
	for _, o := range objs {
		b = fmt.Appendf(b, "%s %s %s\n", o.Kind, o.Name, o.Value)
	}
	checkGolden(t, "desired_sample.txt", b)

	if again := Desired(sampleTailnet()); !cmp.Equal(objs, again) {
		t.Errorf("Desired is not deterministic:\n%s", cmp.Diff(objs, again))
	}
}

func TestDesiredCanonical(t *testing.T) {
	tests := []struct {
		name string
		t    *schema.Tailnet
		kind Kind
		obj  string // object name
		want string // its value
	}{
		{
			name: "auth key tags kept as declared",
			t: &schema.Tailnet{AuthKeys: map[string]schema.AuthKey{
				"k": {Tags: []string{"tag:b", "tag:a", "tag:b"}},
			}},
			kind: KindAuthKey, obj: "k",
			want: `{"user":"","tags":["tag:b","tag:a","tag:b"],"reusable":false,"ephemeral":false,"preauthorized":false,"expires":"","uses":0,"secretHash":""}`,
		},
		{
			name: "auth key expiry in UTC",
			t: &schema.Tailnet{AuthKeys: map[string]schema.AuthKey{
				"k": {User: "a@b.c", Expires: time.Date(2027, 1, 1, 10, 0, 0, 0, time.FixedZone("CET", 3600))},
			}},
			kind: KindAuthKey, obj: "k",
			want: `{"user":"a@b.c","tags":[],"reusable":false,"ephemeral":false,"preauthorized":false,"expires":"2027-01-01T09:00:00Z","uses":0,"secretHash":""}`,
		},
		{
			name: "routes kept as declared",
			t: &schema.Tailnet{Routes: map[string][]netip.Prefix{
				"r": {netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("10.0.0.0/8")},
			}},
			kind: KindRoute, obj: "r",
			want: `["192.168.0.0/16","10.0.0.0/8"]`,
		},
		{
			name: "nameserver order kept",
			t: &schema.Tailnet{DNS: schema.DNS{
				Nameservers: []netip.Addr{netip.MustParseAddr("9.9.9.9"), netip.MustParseAddr("1.1.1.1")},
			}},
			kind: KindDNS, obj: "settings",
			want: `{"magicDNS":false,"nameservers":["9.9.9.9","1.1.1.1"],"splitDNS":{},"searchDomains":[]}`,
		},
		{
			name: "dns https shown when on",
			t:    &schema.Tailnet{DNS: schema.DNS{MagicDNS: true, HTTPS: true}},
			kind: KindDNS, obj: "settings",
			want: `{"magicDNS":true,"nameservers":[],"splitDNS":{},"searchDomains":[],"https":true}`,
		},
		{
			name: "zero settings",
			t:    &schema.Tailnet{},
			kind: KindTailnet, obj: "settings",
			want: `{"name":"","domain":"","ipv4":"","ipv6":"","nodeKeyExpiry":"0","ephemeralTimeout":"0","ssh":false,"fileSharing":false}`,
		},
		{
			name: "durations in days when whole",
			t:    &schema.Tailnet{Settings: schema.Settings{NodeKeyExpiry: 90 * 24 * time.Hour, EphemeralTimeout: 90 * time.Minute}},
			kind: KindTailnet, obj: "settings",
			want: `{"name":"","domain":"","ipv4":"","ipv6":"","nodeKeyExpiry":"90d","ephemeralTimeout":"1h30m0s","ssh":false,"fileSharing":false}`,
		},
		{
			name: "device approval on",
			t:    &schema.Tailnet{Settings: schema.Settings{DeviceApproval: true}},
			kind: KindTailnet, obj: "settings",
			want: `{"name":"","domain":"","ipv4":"","ipv6":"","nodeKeyExpiry":"0","ephemeralTimeout":"0","ssh":false,"fileSharing":false,"deviceApproval":true}`,
		},
		{
			name: "identical dns records collapse",
			t: &schema.Tailnet{DNS: schema.DNS{Records: []schema.DNSRecord{
				{Name: "a.example", Type: "A", Value: netip.MustParseAddr("10.0.0.1")},
				{Name: "a.example", Type: "A", Value: netip.MustParseAddr("10.0.0.1")},
			}}},
			kind: KindDNSRecord, obj: "a.example A 10.0.0.1",
			want: `{"name":"a.example","type":"A","value":"10.0.0.1"}`,
		},
		{
			name: "policy list kept verbatim",
			t: &schema.Tailnet{Policy: schema.Policy{ACLs: []schema.ACL{
				{Action: "accept", Users: []string{"b", "a"}, Ports: []string{"*:*"}},
			}}},
			kind: KindPolicy, obj: "acls",
			want: `[{"action":"accept","users":["b","a"],"ports":["*:*"]}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := Desired(tt.t)
			var got []string
			for _, o := range objs {
				if o.Kind == tt.kind && o.Name == tt.obj {
					got = append(got, string(o.Value))
				}
			}
			if diff := cmp.Diff([]string{tt.want}, got); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s", tt.kind, tt.obj, diff)
			}
		})
	}
}

func TestDesiredEmptyPolicyKeysOmitted(t *testing.T) {
	for _, o := range Desired(&schema.Tailnet{}) {
		if o.Kind != KindTailnet && o.Kind != KindDNS {
			t.Errorf("empty tailnet has object %s %s", o.Kind, o.Name)
		}
	}
}

func TestDesiredInvalidRawJSON(t *testing.T) {
	tn := &schema.Tailnet{Policy: schema.Policy{DERPMap: json.RawMessage(`{"Regions":`)}}
	objs, err := desired(tn)
	var ce *ConfigError
	if !errors.As(err, &ce) || !NeedsNewCommit(err) {
		t.Fatalf("desired error = %v, want a ConfigError", err)
	}
	found := false
	for _, o := range objs {
		if o.Kind == KindPolicy && o.Name == "derpMap" {
			found = json.Valid(o.Value)
		}
	}
	if !found {
		t.Errorf("derpMap object missing or not valid JSON: %v", objs)
	}
}

func TestDurationRoundTrip(t *testing.T) {
	for _, d := range []time.Duration{0, time.Second, 90 * time.Minute, 24 * time.Hour, 180 * 24 * time.Hour, 36 * time.Hour} {
		t.Run(d.String(), func(t *testing.T) {
			got, err := parseDuration(formatDuration(d))
			if err != nil || got != d {
				t.Errorf("parseDuration(formatDuration(%v)) = %v, %v", d, got, err)
			}
		})
	}
}

// TestEmptyACLsSurvive: an explicit empty acls list denies everything,
// while no acls at all allows everything, so the difference must survive
// Desired, Apply and LoadApplied.
func TestEmptyACLsSurvive(t *testing.T) {
	tests := []struct {
		name   string
		acls   []schema.ACL
		grants []schema.Grant
	}{
		{"absent", nil, nil},
		{"empty acls", []schema.ACL{}, nil},
		{"empty grants", nil, []schema.Grant{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st, _ := openStore(t)
			in := &schema.Tailnet{Policy: schema.Policy{ACLs: tt.acls, Grants: tt.grants}}
			if _, err := Apply(ctx, st, in, rev("c1")); err != nil {
				t.Fatal(err)
			}
			got, err := LoadApplied(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			if (got.Policy.ACLs == nil) != (tt.acls == nil) || (got.Policy.Grants == nil) != (tt.grants == nil) {
				t.Errorf("after round trip acls nil=%v grants nil=%v; want %v, %v",
					got.Policy.ACLs == nil, got.Policy.Grants == nil, tt.acls == nil, tt.grants == nil)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	objs := Desired(sampleTailnet())
	fp := Fingerprint(objs)
	if !strings.HasPrefix(fp, "sha256:") || len(fp) != len("sha256:")+64 {
		t.Fatalf("Fingerprint = %q, want sha256:<64 hex>", fp)
	}
	reversed := slices.Clone(objs)
	slices.Reverse(reversed)
	if got := Fingerprint(reversed); got != fp {
		t.Errorf("Fingerprint depends on order: %s vs %s", got, fp)
	}
	if got := Fingerprint(Desired(changedSample())); got == fp {
		t.Error("different configs share a fingerprint")
	}
	// Moving bytes between name and value changes the hash.
	a := []Object{{Kind: "k", Name: "ab", Value: json.RawMessage(`"c"`)}}
	b := []Object{{Kind: "k", Name: "a", Value: json.RawMessage(`b"c"`)}}
	if Fingerprint(a) == Fingerprint(b) {
		t.Error("fingerprint is ambiguous across field boundaries")
	}
}

// TestSettingsSSHAndFileSharingState: applied state keeps tailnet.ssh and
// tailnet.fileSharing both ways, and state written before the keys existed
// loads with their defaults (true) rather than turning them off.
func TestSettingsSSHAndFileSharingState(t *testing.T) {
	tests := []struct {
		name      string
		value     string
		wantSSH   bool
		wantFiles bool
	}{
		{"before the keys existed", `{"name":"","domain":"","ipv4":"","ipv6":"","nodeKeyExpiry":"0","ephemeralTimeout":"0"}`, true, true},
		{"both off", `{"name":"","domain":"","ipv4":"","ipv6":"","nodeKeyExpiry":"0","ephemeralTimeout":"0","ssh":false,"fileSharing":false}`, false, false},
		{"ssh off", `{"name":"","domain":"","ipv4":"","ipv6":"","nodeKeyExpiry":"0","ephemeralTimeout":"0","ssh":false,"fileSharing":true}`, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn, err := tailnetFromObjects([]Object{{Kind: KindTailnet, Name: settingsName, Value: json.RawMessage(tt.value)}})
			if err != nil {
				t.Fatal(err)
			}
			got := []bool{tn.Settings.SSH, tn.Settings.FileSharing}
			if diff := cmp.Diff([]bool{tt.wantSSH, tt.wantFiles}, got); diff != "" {
				t.Errorf("SSH, FileSharing (-want +got):\n%s", diff)
			}
			again := Desired(tn)
			if again[0].Kind != KindTailnet || !json.Valid(again[0].Value) {
				t.Fatalf("Desired's first object is %s %s", again[0].Kind, again[0].Value)
			}
			var v settingsValue
			if err := json.Unmarshal(again[0].Value, &v); err != nil || v.SSH != tt.wantSSH || v.FileSharing != tt.wantFiles {
				t.Errorf("re-encoded settings %s (err %v); want ssh %v, fileSharing %v", again[0].Value, err, tt.wantSSH, tt.wantFiles)
			}
		})
	}
}

// TestSettingsDeviceApprovalState: tailnet.deviceApproval survives the
// applied state (a restart serves it), and state written before the key
// existed loads with approval off.
func TestSettingsDeviceApprovalState(t *testing.T) {
	for _, tt := range []struct {
		name  string
		value string
		want  bool
	}{
		{"before the key existed", `{"name":"","domain":"","ipv4":"","ipv6":"","nodeKeyExpiry":"0","ephemeralTimeout":"0","ssh":true,"fileSharing":true}`, false},
		{"on", `{"name":"","domain":"","ipv4":"","ipv6":"","nodeKeyExpiry":"0","ephemeralTimeout":"0","ssh":true,"fileSharing":true,"deviceApproval":true}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tn, err := tailnetFromObjects([]Object{{Kind: KindTailnet, Name: settingsName, Value: json.RawMessage(tt.value)}})
			if err != nil {
				t.Fatal(err)
			}
			if tn.Settings.DeviceApproval != tt.want {
				t.Errorf("DeviceApproval = %v, want %v", tn.Settings.DeviceApproval, tt.want)
			}
			if again := Desired(tn); string(again[0].Value) != tt.value {
				t.Errorf("re-encoded settings %s, want %s (byte for byte: no spurious plan)", again[0].Value, tt.value)
			}
		})
	}
}
