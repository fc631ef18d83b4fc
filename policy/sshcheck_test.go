package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"tailscale.com/tailcfg"
)

// TestValidateSSHCheck: Validate (lint and apply) accepts SSH "check"
// rules; it warns, at the source, about tags and autogroup:tagged in a
// check rule's src (a tagged node has no owner to log in again), and about
// nothing else. The tests still run.
func TestValidateSSHCheck(t *testing.T) {
	const tags = `"tagOwners": {"tag:db": ["alice@example.com"], "tag:ci": ["alice@example.com"]}, `
	const tagged = `cannot pass an SSH "check": a tagged node has no user to log in again, so its sessions under this rule are refused (hint: use "accept" for tagged sources, in a rule of its own)`
	tests := []struct {
		name string
		doc  string
		want []string // Validate's diagnostics
	}{
		{"check", `{` + tags + `"ssh": [{"action": "check", "src": ["alice@example.com"], "dst": ["tag:db"], "users": ["root"]}]}`, nil},
		{"check with checkPeriod among accepts", `{` + tags + `"ssh": [
			{"action": "accept", "src": ["tag:ci"], "dst": ["tag:db"], "users": ["root"]},
			{"action": "check", "checkPeriod": "1h", "src": ["autogroup:member"], "dst": ["tag:db"], "users": ["root"]},
		]}`, nil},
		{"tagged sources", `{` + tags + `"ssh": [
			{"action": "check", "src": ["alice@example.com", "tag:ci"], "dst": ["tag:db"], "users": ["root"]},
			{"action": "check", "src": ["autogroup:tagged"], "dst": ["tag:db"], "users": ["root"]},
		]}`, []string{
			"policy.hujson:2:53: warning: ssh[0].src[1]: tag:ci " + tagged,
			"policy.hujson:3:32: warning: ssh[1].src[0]: autogroup:tagged " + tagged,
		}},
		{"tests run", `{` + tags + `"ssh": [{"action": "check", "src": ["alice@example.com"], "dst": ["tag:db"], "users": ["root"]}],
			"sshTests": [{"src": "alice@example.com", "dst": ["tag:db"], "accept": ["root"]}]}`, []string{
			`policy.hujson:2:76: error: sshTests[0].accept[0]: alice@example.com -> tag:db (ssh user "root"): expected accept, got check (hint: fix the ssh rules or the test)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Validate(load(t, tt.doc), nil)
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

// TestSSHCheckAction: a check rule becomes holdAndDelegate on the control
// server's callback with Tailscale's placeholders; an accept rule, and a
// passed check (SSHAcceptAction), accept with forwarding allowed.
func TestSSHCheckAction(t *testing.T) {
	p, diags := Compile(load(t, `{"tagOwners": {"tag:db": [], "tag:web": []},
		"ssh": [
			{"action": "check", "src": ["alice@example.com"], "dst": ["tag:db"], "users": ["root"]},
			{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:web"], "users": ["root"]},
		]}`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	res := p.Evaluate(smallNodes(), Options{ControlURL: "https://tp.example.com"})
	tests := []struct {
		node tailcfg.NodeID
		want *tailcfg.SSHAction
	}{
		{10, &tailcfg.SSHAction{HoldAndDelegate: "https://tp.example.com/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER"}},
		{11, SSHAcceptAction()},
	}
	for _, tt := range tests {
		v := res.Node(tt.node)
		if v == nil || v.SSH == nil || len(v.SSH.Rules) != 1 {
			t.Fatalf("node %d: SSH policy %+v, want one rule", tt.node, v)
		}
		if diff := cmp.Diff(tt.want, v.SSH.Rules[0].Action); diff != "" {
			t.Errorf("node %d: action (-want +got):\n%s", tt.node, diff)
		}
	}
	if diff := cmp.Diff(&tailcfg.SSHAction{Accept: true, AllowAgentForwarding: true, AllowLocalPortForwarding: true, AllowRemotePortForwarding: true}, SSHAcceptAction()); diff != "" {
		t.Errorf("SSHAcceptAction (-want +got):\n%s", diff)
	}
}
