package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestValidateRefusesSSHCheck: Compile accepts SSH "check" rules as
// Tailscale does, while Validate (lint and apply) refuses each one at its
// action, still running the tests; accept rules pass.
func TestValidateRefusesSSHCheck(t *testing.T) {
	const tags = `"tagOwners": {"tag:db": ["alice@example.com"]}, `
	const refusal = `SSH action "check" needs interactive login, which tailplane does not support yet (hint: use "accept", narrowing src, dst or users if the check was meant to guard access)`
	tests := []struct {
		name string
		doc  string
		want []string // Validate's diagnostics
	}{
		{"accept", `{` + tags + `"ssh": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:db"], "users": ["root"]}]}`, nil},
		{"check", `{` + tags + `"ssh": [{"action": "check", "src": ["alice@example.com"], "dst": ["tag:db"], "users": ["root"]}]}`,
			[]string{"policy.hujson:1:59: error: ssh[0].action: " + refusal}},
		{"check among accepts, with checkPeriod", `{` + tags + `"ssh": [
			{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:db"], "users": ["root"]},
			{"action": "check", "checkPeriod": "1h", "src": ["alice@example.com"], "dst": ["tag:db"], "users": ["root"]},
			{"action": "check", "src": ["bob@example.com"], "dst": ["tag:db"], "users": ["root"]},
		]}`, []string{
			"policy.hujson:3:5: error: ssh[1].action: " + refusal,
			"policy.hujson:4:5: error: ssh[2].action: " + refusal,
		}},
		{"tests still run", `{` + tags + `"ssh": [{"action": "check", "src": ["alice@example.com"], "dst": ["tag:db"], "users": ["root"]}],
			"sshTests": [{"src": "alice@example.com", "dst": ["tag:db"], "accept": ["root"]}]}`, []string{
			"policy.hujson:1:59: error: ssh[0].action: " + refusal,
			`policy.hujson:2:76: error: sshTests[0].accept[0]: alice@example.com -> tag:db (ssh user "root"): expected accept, got check (hint: fix the ssh rules or the test)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := load(t, tt.doc)
			if _, diags := Compile(tn); diags.HasErrors() {
				t.Fatalf("Compile refused what Tailscale accepts: %v", diags)
			}
			_, diags := Validate(tn, nil)
			var got []string
			for _, d := range diags {
				got = append(got, d.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}
