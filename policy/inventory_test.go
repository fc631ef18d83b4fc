package policy

import (
	"strings"
	"testing"

	"github.com/tailplane/tailplane/schema"
)

func TestValidate(t *testing.T) {
	users := map[string]schema.User{"alice@example.com": {Login: "alice@example.com"}, "bob@example.com": {Login: "bob@example.com"}}
	acl := []schema.ACL{{Action: "accept", Src: []string{"alice@example.com"}, Dst: []string{"bob@example.com:22"}}}
	for _, tc := range []struct {
		name       string
		pol        schema.Policy
		wantPolicy bool
		wantErr    string // substring of the only error; "" for none
	}{
		{"clean", schema.Policy{ACLs: acl, Tests: []schema.ACLTest{{Src: "alice@example.com", Accept: []string{"bob@example.com:22"}}}}, true, ""},
		{"failing test", schema.Policy{ACLs: acl, Tests: []schema.ACLTest{{Src: "bob@example.com", Accept: []string{"alice@example.com:22"}}}}, true, "expected accept, got deny"},
		{"does not compile", schema.Policy{ACLs: []schema.ACL{{Action: "accept", Src: []string{"group:nope"}, Dst: []string{"*:*"}}}}, false, "group:nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, diags := Validate(&schema.Tailnet{Users: users, Policy: tc.pol}, nil)
			if (p != nil) != tc.wantPolicy {
				t.Errorf("policy returned: %v, want %v", p != nil, tc.wantPolicy)
			}
			errs := diags.Errors()
			switch {
			case tc.wantErr == "" && len(errs) > 0:
				t.Errorf("unexpected errors: %v", errs)
			case tc.wantErr != "" && (len(errs) != 1 || !strings.Contains(errs[0].Message, tc.wantErr)):
				t.Errorf("errors = %v, want one containing %q", errs, tc.wantErr)
			}
		})
	}
}
