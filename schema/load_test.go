package schema

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func init() {
	// A fixed clock makes expiry warnings deterministic.
	timeNow = func() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) }
}

const hashA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// mapFS builds a file system of the given files (name, content pairs).
func mapFS(files ...string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i := 0; i+1 < len(files); i += 2 {
		fsys[files[i]] = &fstest.MapFile{Data: []byte(files[i+1])}
	}
	return fsys
}

func render(ds Diagnostics) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.String())
	}
	return out
}

func TestLoadMerge(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		want  []string // rendered diagnostics
		check func(t *testing.T, tn *Tailnet)
	}{{
		name: "objects merge across files",
		files: []string{
			"a.hujson", `{"users": {"alice@example.com": {"role": "owner"}}}`,
			"b.json", `{"users": {"bob@example.com": {}}}`,
			"sub/c.hujson", `{"groups": {"group:eng": ["alice@example.com"]}}`,
		},
		check: func(t *testing.T, tn *Tailnet) {
			want := map[string]User{
				"alice@example.com": {Login: "alice@example.com", Name: "alice", Role: RoleOwner},
				"bob@example.com":   {Login: "bob@example.com", Name: "bob", Role: RoleMember},
			}
			if diff := cmp.Diff(want, tn.Users); diff != "" {
				t.Errorf("users (-want +got):\n%s", diff)
			}
			if got := tn.Policy.Groups["group:eng"]; len(got) != 1 {
				t.Errorf("groups = %v", tn.Policy.Groups)
			}
		},
	}, {
		name: "same value twice is fine",
		files: []string{
			"a.hujson", `{"tailnet": {"name": "x"}, "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`,
			"b.hujson", `{"tailnet": {"name": "x"}, "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`,
		},
	}, {
		name: "conflicting scalar names both places",
		files: []string{
			"a.hujson", "{\n  \"tailnet\": {\"name\": \"x\"}\n}",
			"b.hujson", "{\n  \"tailnet\": {\n    \"name\": \"y\"}}",
		},
		want: []string{`b.hujson:3:5: error: tailnet.name: conflicting value: "y" here, but "x" at a.hujson:2:15 (hint: a key set in several files must have the same value everywhere (objects merge key by key; lists and scalars must be identical); keep one of them)`},
	}, {
		name: "one secret in two files",
		files: []string{
			"a.hujson", "{\n  \"apiKeys\": {\"zz\": {\"role\": \"read\", \"secretHash\": \"" + hashA + "\"}}\n}",
			"b.hujson", "{\n  \"apiKeys\": {\n    \"aa\": {\"role\": \"admin\", \"secretHash\": \"" + hashA + "\"}}}",
		},
		want: []string{`b.hujson:3:29: error: apiKeys.aa.secretHash: API key "aa" has the same secretHash as API key "zz" (hint: API key "zz" declares this secretHash at a.hujson:2:38; give each key its own secret (tailplane authkey new))`},
	}, {
		name: "conflicting lists",
		files: []string{
			"a.hujson", `{"acls": []}`,
			"b.hujson", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`,
		},
		want: []string{`b.hujson:1:2: error: acls: conflicting value: a list of 1 here, but a list of 0 at a.hujson:1:2 (hint: a key set in several files must have the same value everywhere (objects merge key by key; lists and scalars must be identical); keep one of them)`},
	}, {
		name: "CUE unifies with HuJSON",
		files: []string{
			"policy.hujson", `{"tagOwners": {"tag:ci": ["alice@example.com"]}}`,
			"users.cue", "package tailnet\n\nusers: \"alice@example.com\": role: \"admin\"\nusers: \"bob@example.com\": #User & {name: \"Bob\"}\nauthKeys: ci: {tags: [\"tag:ci\"], secretHash: \"" + hashA + "\"}\n",
		},
		check: func(t *testing.T, tn *Tailnet) {
			if diff := cmp.Diff(User{Login: "bob@example.com", Name: "Bob", Role: RoleMember}, tn.Users["bob@example.com"]); diff != "" {
				t.Error(diff)
			}
			if got, want := tn.Source.Pos(`users["alice@example.com"].role`), (Pos{File: "users.cue", Line: 3, Col: 29}); got != want {
				t.Errorf("pos = %v, want %v", got, want)
			}
			if got := tn.AuthKeys["ci"]; got.SecretHash != hashA || len(got.Tags) != 1 || !got.Preauthorized {
				t.Errorf("authKeys.ci = %+v", got)
			}
		},
	}, {
		name: "CUE refers to what HuJSON files declare",
		files: []string{
			"users.hujson", `{"users": {"a@example.com": {"role": "admin"}, "b@example.com": {"role": "member"}}, "ACLs": []}`,
			"groups.cue", "package tailnet\n\ngroups: \"group:admins\": [for l, u in users if u.role == \"admin\" {l}]\n",
		},
		want: []string{`users.hujson:1:86: warning: acls: key "ACLs" is spelled "acls" in Tailscale's documentation (hint: rename it to "acls"; tailplane accepts it like Tailscale does)`},
		check: func(t *testing.T, tn *Tailnet) {
			if diff := cmp.Diff([]string{"a@example.com"}, tn.Policy.Groups["group:admins"]); diff != "" {
				t.Error(diff)
			}
			if got := tn.Source.Pos(`groups["group:admins"][0]`); got.File != "groups.cue" {
				t.Errorf("group member declared at %v", got)
			}
		},
	}, {
		name: "CUE constraints on HuJSON data fall back to the loader's checks",
		files: []string{
			"users.hujson", "{\"users\": {\"a@example.com\": {\"role\": \"boss\"}}}",
			"users.cue", "package tailnet\n\nusers: [string]: #User\n",
		},
		want: []string{`users.hujson:1:30: error: users["a@example.com"].role: unknown role "boss" (hint: use "owner", "admin" or "member")`},
	}, {
		name: "conflict the CUE files cannot do without",
		files: []string{
			"a.hujson", "{\"tailnet\": {\"name\": \"A\"}, \"users\": {\"a@example.com\": {}}}",
			"b.cue", "package tailnet\n\ntailnet: name: \"B\"\ngroups: \"group:all\": [for l, _ in users {l}]\n",
		},
		want: []string{`a.hujson:1:22: error: tailnet.name: conflicting values "A" and "B" (also at b.cue:3:16)`},
	}, {
		name: "CUE conflicts with HuJSON",
		files: []string{
			"a.hujson", `{"dns": {"magicDNS": true}}`,
			"z.cue", "package tailnet\ndns: magicDNS: false\n",
		},
		want: []string{`z.cue:2:6: error: dns.magicDNS: conflicting value: false here, but true at a.hujson:1:10 (hint: a key set in several files must have the same value everywhere (objects merge key by key; lists and scalars must be identical); keep one of them)`},
	}, {
		name:  "CUE schema errors are positioned in the CUE file",
		files: []string{"u.cue", "package tailnet\nusers: \"a@b.c\": {\n\trole: \"boss\"\n}\n"},
		want:  []string{`u.cue:3:2: error: users["a@b.c"].role: unknown role "boss" (hint: use "owner", "admin" or "member")`},
	}, {
		name:  "CUE non-concrete value",
		files: []string{"u.cue", "package tailnet\ntailnet: name: string\n"},
		want:  []string{`u.cue:2:10: error: tailnet.name: value is not concrete (string) (hint: give a concrete value, e.g. a string or number instead of a type or constraint)`},
	}, {
		name:  "CUE wrong package",
		files: []string{"u.cue", "package foo\nx: 1\n"},
		want:  []string{`u.cue:1:1: error: CUE file is in package "foo"; all CUE files of a config repository must be in package "tailnet" (hint: start the file with ` + "`package tailnet`" + `)`},
	}, {
		name:  "CUE syntax error",
		files: []string{"u.cue", "package tailnet\nusers: {\n"},
		want:  []string{`u.cue:2:9: error: syntax error: expected '}', found 'EOF'`},
	}, {
		name:  "HuJSON syntax error",
		files: []string{"a.hujson", "{\n  \"acls\": [,]\n}"},
		want:  []string{`a.hujson:2:12: error: syntax error: invalid character ',' at start of value (hint: HuJSON is JSON plus // and /* */ comments and trailing commas)`},
	}, {
		name:  "duplicate key in one file",
		files: []string{"a.hujson", `{"hosts": {"a": "1.2.3.4", "a": "1.2.3.5"}}`},
		want:  []string{`a.hujson:1:28: error: hosts.a: duplicate key "a" (first set at a.hujson:1:12) (hint: remove one of them; the first one is used)`},
	}, {
		name:  "hidden dirs and other files are skipped",
		files: []string{"a.hujson", `{}`, ".git/x.json", `nonsense`, "README.md", "# hi", ".hidden.json", "x"},
	}, {
		name:  "byte order mark is skipped",
		files: []string{"a.json", "\xef\xbb\xbf{\"tailnet\": {\"name\": 1}}"},
		want:  []string{`a.json:1:14: error: tailnet.name: expected a string, got 1`},
	}, {
		name:  "top-level must be an object",
		files: []string{"a.json", `[1]`},
		want:  []string{`a.json:1:1: error: a config file must hold an object, not a list of 1 (hint: wrap the file's content in { ... })`},
	}, {
		name:  "unknown top-level key",
		files: []string{"a.json", `{"user": {}}`},
		want:  []string{`a.json:1:2: error: user: unknown top-level key "user" (hint: did you mean "users"?)`},
	}, {
		name:  "Tailscale key in another case is accepted with a warning",
		files: []string{"a.json", `{"ACLs": [{"Action": "accept", "Users": ["*"], "Ports": ["*:*"]}]}`},
		want:  []string{`a.json:1:2: warning: acls: key "ACLs" is spelled "acls" in Tailscale's documentation (hint: rename it to "acls"; tailplane accepts it like Tailscale does)`},
		check: func(t *testing.T, tn *Tailnet) {
			if len(tn.Policy.ACLs) != 1 || tn.Policy.ACLs[0].Action != "accept" {
				t.Errorf("acls = %+v", tn.Policy.ACLs)
			}
			// Paths in canonical spelling find keys written in another case.
			if got, want := tn.Source.Pos("acls[0].ports[0]"), (Pos{File: "a.json", Line: 1, Col: 58}); got != want {
				t.Errorf("acls[0].ports[0] at %v, want %v", got, want)
			}
		},
	}, {
		name:  "unsupported Tailscale key warns",
		files: []string{"a.json", `{"defaultSrcPosture": ["posture:x"]}`},
		want:  []string{`a.json:1:2: warning: defaultSrcPosture: Tailscale's "defaultSrcPosture" key is not supported yet (hint: tailplane parses it but ignores it for now)`},
	}, {
		name:  "unsupported key still gets its types checked",
		files: []string{"a.json", `{"defaultSrcPosture": [1]}`},
		want: []string{
			`a.json:1:2: warning: defaultSrcPosture: Tailscale's "defaultSrcPosture" key is not supported yet (hint: tailplane parses it but ignores it for now)`,
			`a.json:1:24: error: defaultSrcPosture[0]: expected string, got 1`,
		},
	}, {
		name:  "unknown keys inside policy entries warn",
		files: []string{"a.json", `{"acls": [{"Action": "accept", "scr": ["*"], "dst": ["*:*"]}], "autoApprovers": {"services": {}}, "grants": [{"src": ["*"], "dst": ["*"], "app": {"x.com/cap": [{"any": 1}]}}]}`},
		want: []string{
			`a.json:1:32: warning: acls[0].scr: key "scr" is unknown or not supported yet (hint: did you mean "src"? tailplane ignores it)`,
			`a.json:1:82: warning: autoApprovers.services: key "services" is unknown or not supported yet (hint: tailplane ignores it; known keys here are routes, exitNode)`,
		},
	}, {
		name:  "float where a string goes",
		files: []string{"a.json", `{"hosts": {"db": 1.5}}`},
		want:  []string{`a.json:1:12: error: hosts.db: expected string, got 1.5`},
	}, {
		name:  "policy type errors come from the schema with a path",
		files: []string{"a.json", "{\"acls\": [\n {\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [3]}]}"},
		want:  []string{`a.json:2:45: error: acls[0].dst[0]: expected string, got 3`},
	}, {
		name:  "policy nulls mean absent, as in Tailscale",
		files: []string{"a.json", `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "proto": null}], "ssh": null, "hosts": {"x": null}}`},
		check: func(t *testing.T, tn *Tailnet) {
			if len(tn.Policy.ACLs) != 1 || tn.Policy.SSH != nil {
				t.Errorf("policy = %+v", tn.Policy)
			}
		},
	}, {
		name:  "null in tailplane's keys is an error",
		files: []string{"a.json", `{"tailnet": {"name": null}}`},
		want:  []string{`a.json:1:14: error: tailnet.name: expected a string, got null`},
	}, {
		name:  "CUE disjunction errors fold into one",
		files: []string{"u.cue", "package tailnet\nusers: \"a@b.c\": #User & {\n\trole: \"boss\"\n}\n"},
		want:  []string{`u.cue:3:8: error: users["a@b.c"].role: "boss" is not allowed here (want "admin" or "member" or "owner")`},
	}, {
		name:  "ssh and file sharing turned off",
		files: []string{"a.hujson", `{"tailnet": {"ssh": false, "fileSharing": false}}`, "b.cue", "package tailnet\ntailnet: ssh: false\n"},
		check: func(t *testing.T, tn *Tailnet) {
			got := []bool{tn.Settings.SSH, tn.Settings.FileSharing}
			if diff := cmp.Diff([]bool{false, false}, got); diff != "" {
				t.Errorf("SSH, FileSharing (-want +got):\n%s", diff)
			}
		},
	}, {
		name:  "defaults",
		files: []string{"a.hujson", "// nothing but a comment\n{}"},
		check: func(t *testing.T, tn *Tailnet) {
			want := Settings{Domain: DefaultDomain, IPv4: DefaultIPv4, IPv6: DefaultIPv6,
				NodeKeyExpiry: DefaultNodeKeyExpiry, EphemeralTimeout: DefaultEphemeralTimeout,
				SSH: true, FileSharing: true}
			if diff := cmp.Diff(want, tn.Settings, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Error(diff)
			}
			if !tn.DNS.MagicDNS {
				t.Error("MagicDNS defaults to true")
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn, ds := Load(context.Background(), mapFS(tt.files...), ".")
			if diff := cmp.Diff(tt.want, render(ds)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			if tt.check != nil {
				if tn == nil {
					t.Fatal("Load returned a nil Tailnet")
				}
				tt.check(t, tn)
			}
		})
	}
}

func TestLoadTooDeep(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	for _, name := range []string{"a.hujson", "a.cue"} {
		tn, ds := LoadBytes(context.Background(), name, []byte(deep))
		if tn != nil || len(ds) != 1 || !strings.Contains(ds[0].Message, "nested more than 64 levels deep") {
			t.Errorf("%s: got %v, %v", name, tn, ds)
		}
	}
}

func TestLoadNoFiles(t *testing.T) {
	tn, ds := Load(context.Background(), mapFS("README.md", "x"), ".")
	if tn != nil || len(ds) != 1 || ds[0].Message != "no *.hujson, *.json or *.cue files found" {
		t.Errorf("got %v, %v", tn, ds)
	}
}

func TestLoadDirMissing(t *testing.T) {
	tn, ds := LoadDir(context.Background(), filepath.Join(t.TempDir(), "nope"))
	if tn != nil || len(ds) != 1 || !strings.HasPrefix(ds[0].Message, "cannot read the config directory: ") {
		t.Errorf("got %v, %v", tn, ds)
	}
}

func TestLoadUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.hujson"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// A dangling symlink cannot be read, like a file without permission.
	if err := os.Symlink(filepath.Join(dir, "missing"), filepath.Join(dir, "b.hujson")); err != nil {
		t.Fatal(err)
	}
	tn, ds := LoadDir(context.Background(), dir)
	if tn != nil || len(ds) != 1 || ds[0].Pos.File != "b.hujson" || !strings.HasPrefix(ds[0].Message, "cannot read: ") || ds[0].Hint == "" {
		t.Errorf("got %v, %v", tn, ds)
	}
}

// TestLoadSymlinkLoop checks that files linking to each other are
// reported, each at its own name, and that a directory linking to its
// parent is not followed.
func TestLoadSymlinkLoop(t *testing.T) {
	dir := t.TempDir()
	for _, l := range [][2]string{{"b.json", "a.json"}, {"a.json", "b.json"}, {"..", "sub/up"}} {
		if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	tn, ds := LoadDir(context.Background(), dir)
	var got []string
	for _, d := range ds {
		got = append(got, d.Pos.File)
	}
	if tn != nil || !slices.Equal(got, []string{"a.json", "b.json"}) {
		t.Errorf("got %v, diagnostics at %q; want nil and diagnostics at a.json and b.json: %v", tn, got, ds)
	}
}

func TestLoadSubdirRoot(t *testing.T) {
	_, ds := Load(context.Background(), mapFS("cfg/a.json", `{"x": 1}`), "cfg/")
	want := []string{`a.json:1:2: error: x: unknown top-level key "x" (hint: known keys are OneCGNATRoute, acls, apiKeys, attrConfig, authKeys, autoApprovers, defaultSrcPosture, derpMap, disableIPv4, dns, grants, groups, hosts, ipsets, login, nodeAttrs, postures, randomizeClientPort, routes, ssh, sshTests, tagOwners, tailnet, tests, users)`}
	if diff := cmp.Diff(want, render(ds)); diff != "" {
		t.Error(diff)
	}
}

func TestLoadBytesTailscalePolicy(t *testing.T) {
	const policy = `// A Tailscale policy file, unchanged.
{
	"groups": {"group:eng": ["alice@example.com"]},
	"tagOwners": {"tag:web": ["group:eng"]},
	"hosts": {"db": "100.64.0.10"},
	"acls": [
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443", "db:5432"]},
	],
	"ssh": [{"action": "check", "src": ["group:eng"], "dst": ["tag:web"], "users": ["root"]}],
	"tests": [{"src": "alice@example.com", "accept": ["tag:web:443"]}],
	"autoApprovers": {"routes": {"10.0.0.0/8": ["tag:web"]}, "exitNode": ["tag:web"]},
	"randomizeClientPort": true,
}`
	tn, ds := LoadBytes(context.Background(), "policy.hujson", []byte(policy))
	if len(ds) != 0 {
		t.Fatalf("diagnostics:\n%v", ds)
	}
	if got := tn.Source.Pos("acls[0].dst[1]"); got != (Pos{File: "policy.hujson", Line: 7, Col: 69}) {
		t.Errorf("acls[0].dst[1] at %v", got)
	}
	if !tn.Policy.RandomizeClientPort || len(tn.Policy.SSH) != 1 || tn.Policy.AutoApprovers.ExitNode[0] != "tag:web" {
		t.Errorf("policy = %+v", tn.Policy)
	}
}

// TestLoadDocExamples loads the CUE examples of docs/config.md, and the
// printed schema committed into a repository next to them.
func TestLoadDocExamples(t *testing.T) {
	users := `package tailnet

users: [string]: #User
users: "alice@example.com": role: "owner"
users: "bob@example.com": {name: "Bob", role: "admin"}

// One group per role, computed.
groups: "group:admins": [for login, u in users if u.role != "member" {login}]
`
	imports := "package tailnet\n\nimport \"strings\"\n\ntailnet: name: strings.ToUpper(\"acme\")\n"
	keys := "package tailnet\n\ntagOwners: \"tag:ci\": []\nauthKeys: ci: #AuthKey & {tags: [\"tag:ci\"], secretHash: \"" + hashA + "\"}\n"
	tn, ds := Load(context.Background(), mapFS("users.cue", users, "name.cue", imports, "keys.cue", keys, "schema.cue", SchemaCUE()), ".")
	if len(ds) > 0 {
		t.Fatalf("diagnostics:\n%v", ds)
	}
	if diff := cmp.Diff([]string{"alice@example.com", "bob@example.com"}, tn.Policy.Groups["group:admins"]); diff != "" {
		t.Error(diff)
	}
	if got := tn.AuthKeys["ci"].SecretHash; got != hashA {
		t.Errorf("secretHash = %q", got)
	}
	if tn.Settings.Name != "ACME" {
		t.Errorf("name = %q", tn.Settings.Name)
	}
}

func TestLoadCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tn, ds := Load(ctx, mapFS("a.hujson", `{}`), ".")
	if tn != nil || len(ds) != 1 || !strings.Contains(ds[0].Message, "context canceled") {
		t.Errorf("got %v, %v", tn, ds)
	}
	tn, ds = LoadBytes(ctx, "a.hujson", []byte(`{}`))
	if tn != nil || len(ds) != 1 || !strings.Contains(ds[0].Message, "context canceled") {
		t.Errorf("LoadBytes: got %v, %v", tn, ds)
	}
}
