package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLintSSHCheck: lint accepts an SSH "check" rule (the server runs the
// check through interactive login) and warns only about a tagged source
// in one, which can never pass a check.
func TestLintSSHCheck(t *testing.T) {
	dir := t.TempDir()
	policy := `{
	"tagOwners": {"tag:db": ["alice@example.com"], "tag:ci": ["alice@example.com"]},
	"ssh": [
		{"action": "check", "src": ["autogroup:member"], "dst": ["tag:db"], "users": ["root"], "checkPeriod": "1h"},
		{"action": "check", "src": ["tag:ci"], "dst": ["tag:db"], "users": ["root"]},
	],
}
`
	tailnet := `{"users": {"alice@example.com": {"role": "owner"}}}`
	for name, text := range map[string]string{"policy.hujson": policy, "tailnet.hujson": tailnet} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := runTool(t, "lint", dir)
	if code != exitOK {
		t.Errorf("lint exit %d, want %d; stderr: %s", code, exitOK, errs)
	}
	want := filepath.Join(dir, "policy.hujson") + `:5:31: warning: ssh[1].src[0]: tag:ci cannot pass an SSH "check": a tagged node has no user to log in again, so its sessions under this rule are refused (hint: use "accept" for tagged sources, in a rule of its own)`
	if !strings.Contains(out, want+"\n") || !strings.Contains(out, ": 0 errors, 1 warnings") {
		t.Errorf("lint output:\n%s\nwant the one warning:\n%s", out, want)
	}
}

// TestInitStarterGolden: the files `tailplane init` writes, against
// testdata/cli/init-starter.golden. The starter's SSH rule is "check", as
// Tailscale's default policy has it, and lint passes it; it shows the ssh
// and fileSharing settings.
func TestInitStarterGolden(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if code, _, errs := runTool(t, "init", dir, "--owner", "ops@example.com", "--name", "Example", "--domain", "tail.example.com"); code != exitOK {
		t.Fatalf("init: exit %d: %s", code, errs)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("==> " + e.Name() + " <==\n")
		b.Write(data)
	}
	golden(t, "init-starter.golden", b.String())
	if !strings.Contains(b.String(), `"action": "check"`) {
		t.Error(`the starter's SSH rule is not "check"`)
	}
	if code, out, errs := runTool(t, "lint", dir); code != exitOK || !strings.Contains(out, ": 0 errors, 0 warnings") {
		t.Errorf("lint of the starter: exit %d\n%s%s", code, out, errs)
	}
}
