package pipeline

import (
	"strings"
	"testing"
)

// TestLoopRefusesSSHCheck: an SSH "check" rule compiles (Tailscale accepts
// it) but tailplane cannot serve it without interactive login, so the
// loop refuses the commit at the compile step, positioned at the rule's
// action, and the last applied commit keeps serving. The same rule with
// "accept" applies.
func TestLoopRefusesSSHCheck(t *testing.T) {
	h := newLoopHarness(t, "")
	good := basicFiles(t)
	h.send(revision("c1", good))
	if st := h.waitAttempt("c1", nil); !st.Attempted.OK {
		t.Fatalf("c1 failed: %+v", st.Attempted)
	}
	withSSH := func(action string) map[string]string {
		files := map[string]string{}
		for k, v := range good {
			files[k] = v
		}
		const anchor = `	"tests": [`
		if !strings.Contains(files["policy.hujson"], anchor) {
			t.Fatalf("policy.hujson has no %q", anchor)
		}
		rule := `	"ssh": [{"action": "` + action + `", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"]}],` + "\n"
		files["policy.hujson"] = strings.Replace(files["policy.hujson"], anchor, rule+anchor, 1)
		return files
	}

	h.send(revision("check", withSSH("check")))
	a := h.waitAttempt("check", nil).Attempted
	if a.OK || a.Step != StepCompile || a.Class != "needs a new commit" {
		t.Fatalf("attempt = %+v, want a failure at %s needing a new commit", a, StepCompile)
	}
	if len(a.Problems) != 1 || !strings.HasPrefix(a.Problems[0].Pos, "policy.hujson:") ||
		!strings.Contains(a.Problems[0].String(), `ssh[0].action: SSH action "check" needs interactive login`) {
		t.Fatalf("problems %+v, want one at policy.hujson ssh[0].action about interactive login", a.Problems)
	}
	if got := h.appliedCommit(); got != "c1" {
		t.Errorf("applied commit %q after the check rule, want c1", got)
	}

	h.send(revision("accept", withSSH("accept")))
	if a := h.waitAttempt("accept", nil).Attempted; !a.OK {
		t.Fatalf("the same rule with accept failed: %+v", a)
	}
	if got := h.appliedCommit(); got != "accept" {
		t.Errorf("applied commit %q, want accept", got)
	}
}
