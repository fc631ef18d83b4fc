package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMayOwnTag: who may apply a tag, by each kind of tagOwners entry, for
// user and tag owners. load's users: alice is the owner, carol an admin,
// bob a member.
func TestMayOwnTag(t *testing.T) {
	p, diags := Compile(load(t, `{
		"groups": {"group:eng": ["bob@example.com"]},
		"tagOwners": {
			"tag:login": ["bob@example.com"],
			"tag:group": ["group:eng"],
			"tag:member": ["autogroup:member"],
			"tag:admin": ["autogroup:admin"],
			"tag:owner": ["autogroup:owner"],
			"tag:tagged": ["tag:login"],
			"tag:nobody": [],
		},
	}`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	user := func(login string) Node { return Node{User: login} }
	tags := func(tags ...string) Node { return Node{Tags: tags} }
	tests := []struct {
		tag   string
		owner Node
		want  bool
	}{
		{"tag:login", user("bob@example.com"), true},
		{"tag:login", user("alice@example.com"), false},
		{"tag:login", tags("tag:group"), false},
		{"tag:group", user("bob@example.com"), true},
		{"tag:group", user("carol@example.org"), false},
		{"tag:member", user("bob@example.com"), true},
		{"tag:member", user("dave@example.net"), true}, // autogroup:member is every user
		{"tag:member", tags("tag:login"), false},
		{"tag:admin", user("carol@example.org"), true},
		{"tag:admin", user("alice@example.com"), true}, // owners are admins too
		{"tag:admin", user("bob@example.com"), false},
		{"tag:admin", user("dave@example.net"), false}, // undeclared: no role
		{"tag:owner", user("alice@example.com"), true},
		{"tag:owner", user("carol@example.org"), false},
		{"tag:tagged", tags("tag:group", "tag:login"), true},
		{"tag:tagged", tags("tag:group"), false},
		{"tag:tagged", user("bob@example.com"), false},
		{"tag:nobody", user("alice@example.com"), false},
		{"tag:undeclared", user("alice@example.com"), false},
	}
	for _, tt := range tests {
		if got := p.MayOwnTag(tt.owner, tt.tag); got != tt.want {
			t.Errorf("MayOwnTag(%+v, %q) = %v, want %v", tt.owner, tt.tag, got, tt.want)
		}
	}

	for _, tt := range []struct {
		tag          string
		wantOwners   []string
		wantDeclared bool
	}{
		{"tag:tagged", []string{"tag:login"}, true},
		{"tag:nobody", []string{}, true},
		{"tag:undeclared", nil, false},
	} {
		owners, declared := p.TagOwners(tt.tag)
		if diff := cmp.Diff(tt.wantOwners, owners); diff != "" || declared != tt.wantDeclared {
			t.Errorf("TagOwners(%q): declared %v, want %v; owners (-want +got):\n%s", tt.tag, declared, tt.wantDeclared, diff)
		}
	}
}
