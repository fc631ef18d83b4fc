package pipeline

import (
	"strings"
	"testing"
)

// TestLoopAppliesSSHCheck: a commit with an SSH "check" rule applies like
// one with "accept" (the control server runs the check through interactive
// login; see control/sshaction.go).
func TestLoopAppliesSSHCheck(t *testing.T) {
	h := newLoopHarness(t, "")
	good := basicFiles(t)
	h.send(revision("c1", good))
	if st := h.waitAttempt("c1", nil); !st.Attempted.OK {
		t.Fatalf("c1 failed: %+v", st.Attempted)
	}
	const anchor = `	"tests": [`
	if !strings.Contains(good["policy.hujson"], anchor) {
		t.Fatalf("policy.hujson has no %q", anchor)
	}
	files := map[string]string{}
	for k, v := range good {
		files[k] = v
	}
	rule := `	"ssh": [{"action": "check", "checkPeriod": "1h", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"]}],` + "\n"
	files["policy.hujson"] = strings.Replace(files["policy.hujson"], anchor, rule+anchor, 1)
	h.send(revision("check", files))
	if a := h.waitAttempt("check", nil).Attempted; !a.OK {
		t.Fatalf("the commit with a check rule failed: %+v", a)
	}
	if got := h.appliedCommit(); got != "check" {
		t.Errorf("applied commit %q, want check", got)
	}
}
