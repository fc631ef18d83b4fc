package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLintSSHCheck: lint reports an SSH "check" rule as an error at its
// action, since tailplane cannot serve it without interactive login.
func TestLintSSHCheck(t *testing.T) {
	dir := t.TempDir()
	policy := `{
	"tagOwners": {"tag:db": ["alice@example.com"]},
	"ssh": [
		{"action": "check", "src": ["autogroup:member"], "dst": ["tag:db"], "users": ["root"]},
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
	if code != exitProblems {
		t.Errorf("lint exit %d, want %d; stderr: %s", code, exitProblems, errs)
	}
	want := filepath.Join(dir, "policy.hujson") + `:4:4: error: ssh[0].action: SSH action "check" needs interactive login, which tailplane does not support yet (hint: use "accept", narrowing src, dst or users if the check was meant to guard access)`
	if !strings.Contains(out, want+"\n") || !strings.Contains(out, ": 1 errors, 0 warnings") {
		t.Errorf("lint output:\n%s\nwant the one error:\n%s", out, want)
	}
}

// TestInitStarterGolden: the files `tailplane init` writes, against
// testdata/cli/init-starter.golden. The starter's SSH rule is "accept"
// (lint refuses "check"), and it shows the ssh and fileSharing settings.
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
	if strings.Contains(b.String(), `"action": "check"`) {
		t.Error(`the starter has an SSH rule with action "check", which lint refuses`)
	}
}
