package main

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/cli")

// repoRoot is where the module's go.mod lives, two levels up from here.
const repoRoot = "../.."

// runTool runs the CLI in-process and returns its exit code and output.
func runTool(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runToolEnv(t, nil, args...)
}

// golden compares got with testdata/cli/NAME, rewriting it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(repoRoot, "testdata", "cli", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/tailplane -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", name, diff)
	}
}

func TestLintExamplesClean(t *testing.T) {
	for _, ex := range []string{"basic", "company"} {
		t.Run(ex, func(t *testing.T) {
			code, out, errs := runTool(t, "lint", filepath.Join(repoRoot, "examples", ex))
			if code != exitOK {
				t.Fatalf("lint exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			if !strings.Contains(out, " 0 errors") || strings.Contains(out, "not evaluated") {
				t.Errorf("lint output = %q, want 0 errors and evaluated tests", out)
			}
		})
	}
}

func TestLintFormats(t *testing.T) {
	for _, tc := range []struct {
		fixture, format string
		wantCode        int
	}{
		{"bad", "text", exitProblems},
		{"bad", "json", exitProblems},
		{"bad", "github", exitProblems},
		{"failing-test", "text", exitProblems},
		{"failing-test", "github", exitProblems},
	} {
		t.Run(tc.fixture+"/"+tc.format, func(t *testing.T) {
			code, out, errs := runTool(t, "lint", "--format", tc.format, filepath.Join(repoRoot, "testdata", "cli", tc.fixture))
			if code != tc.wantCode {
				t.Errorf("exit code = %d, want %d; stderr: %s", code, tc.wantCode, errs)
			}
			out = strings.ReplaceAll(out, repoRoot+"/", "")
			golden(t, "lint-"+tc.fixture+"."+tc.format+".golden", out)
		})
	}
}

// TestLintBadDir checks that a config directory that is missing or is a
// file is reported once, under the name the user gave.
func TestLintBadDir(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file.hujson")
	if err := os.WriteFile(file, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(tmp, "nope"), file} {
		code, out, _ := runTool(t, "lint", dir)
		want := filepath.ToSlash(dir) + ": error: cannot read the config directory: "
		if code != exitProblems || !strings.HasPrefix(out, want) || strings.Count(out, filepath.Base(dir)) != 3 {
			t.Errorf("lint %s: exit %d, output:\n%s\nwant exit %d, starting %q, naming it once per line", dir, code, out, exitProblems, want)
		}
	}
}

// TestLintWarningsOnly checks that warnings alone exit 0, in every format,
// and are still printed.
func TestLintWarningsOnly(t *testing.T) {
	dir := t.TempDir()
	doc := `{
  "users": {"alice@example.com": {"role": "owner"}},
  "acls": [{"action": "accept", "src": ["carol@example.com"], "dst": ["alice@example.com:22"]}],
}
`
	if err := os.WriteFile(filepath.Join(dir, "policy.hujson"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	for format, want := range map[string]string{
		"text":   "policy.hujson:3:41: warning: acls[0].src[0]: ",
		"github": "::warning file=" + filepath.ToSlash(dir) + "/policy.hujson,line=3,col=41::acls[0].src[0]: ",
		"json":   `"severity": "warning"`,
	} {
		t.Run(format, func(t *testing.T) {
			code, out, errs := runTool(t, "lint", "--format", format, dir)
			if code != exitOK || !strings.Contains(out, want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s%s", code, exitOK, want, out, errs)
			}
		})
	}
}

func TestLintUsage(t *testing.T) {
	for _, args := range [][]string{
		{"lint", "--format", "xml"},
		{"lint", "a", "b"},
		{"lint", "--no-such-flag"},
		{"plan", filepath.Join(repoRoot, "examples", "basic")}, // no --state-dir
		{"nosuchcommand"},
	} {
		if code, _, _ := runTool(t, args...); code != exitUsage {
			t.Errorf("%q: exit code %d, want %d", args, code, exitUsage)
		}
	}
}

// TestUnknownFlag: every command answers an unknown flag with exit 2, the
// error and its usage on stderr, and nothing on stdout. The golden file
// holds each command's answer, so usage texts are reviewed as they change.
func TestUnknownFlag(t *testing.T) {
	names := slices.Sorted(maps.Keys(commands))
	var all strings.Builder
	for _, name := range names {
		code, out, errs := runTool(t, name, "--no-such-flag")
		if code != exitUsage || out != "" {
			t.Errorf("%s --no-such-flag: exit %d, stdout %q; want exit %d and no stdout", name, code, out, exitUsage)
		}
		want := "tailplane " + name + ": unknown flag: --no-such-flag\n\nUsage: tailplane " + name
		if !strings.HasPrefix(errs, want) {
			t.Errorf("%s --no-such-flag: stderr does not start with %q:\n%s", name, want, errs)
		}
		fmt.Fprintf(&all, "$ tailplane %s --no-such-flag\n%s\n", name, errs)
	}
	golden(t, "unknown-flag.golden", all.String())
}

// TestAPIKeyHelp: status and plan --server work with a read key, and their
// help says so instead of asking for an admin key.
func TestAPIKeyHelp(t *testing.T) {
	for _, name := range []string{"status", "plan"} {
		code, _, errs := runTool(t, name, "--help")
		if code != exitOK || strings.Contains(errs, "admin API key") || !strings.Contains(errs, "role read or admin") {
			t.Errorf("%s --help: exit %d, want 0 and --api-key-file to accept a read key:\n%s", name, code, errs)
		}
	}
}

func TestPlan(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state") // does not exist: plan from empty
	basic := filepath.Join(repoRoot, "examples", "basic")

	code, out, errs := runTool(t, "plan", basic, "--state-dir", state, "--detailed-exitcode")
	if code != exitPlanChanges {
		t.Fatalf("exit code %d, want %d; stderr: %s", code, exitPlanChanges, errs)
	}
	golden(t, "plan-basic-from-empty.golden", out)
	if strings.Contains(out, "538b36c98d1818459226958931683dc120f46a011606c2aabd1ebce0c361e292") {
		t.Errorf("plan shows a secret hash unmasked:\n%s", out)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("plan created the state dir (stat error %v); planning must not write", err)
	}

	// Without --detailed-exitcode, changes still exit 0.
	if code, _, _ := runTool(t, "plan", basic, "--state-dir", state); code != exitOK {
		t.Errorf("plain plan exit code %d, want 0", code)
	}

	code, out, _ = runTool(t, "plan", basic, "--state-dir", state, "--json")
	if code != exitOK || !strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Errorf("plan --json: exit %d, output %q", code, out)
	}

	// A config with errors plans nothing and says why.
	code, _, errs = runTool(t, "plan", filepath.Join(repoRoot, "testdata", "cli", "bad"), "--state-dir", state, "--detailed-exitcode")
	if code != exitProblems || !strings.Contains(errs, "nothing would be applied") {
		t.Errorf("plan of bad config: exit %d, stderr %q", code, errs)
	}
}

func TestInitLintsClean(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if code, _, errs := runTool(t, "init", dir, "--owner", "ops@example.com", "--name", `Quote "Corp"`); code != exitOK {
		t.Fatalf("init: exit %d: %s", code, errs)
	}
	code, out, errs := runTool(t, "lint", dir)
	if code != exitOK {
		t.Fatalf("starter repo does not lint clean (exit %d):\n%s%s", code, out, errs)
	}
	// Flags that would make an invalid starter write nothing.
	bad := filepath.Join(t.TempDir(), "bad")
	if code, _, errs := runTool(t, "init", bad, "--domain", "-bad..domain"); code != exitProblems || !strings.Contains(errs, "tailnet.domain") {
		t.Errorf("init with a bad --domain: exit %d, stderr %q", code, errs)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("init with a bad --domain created %s", bad)
	}
	// A second init refuses to overwrite.
	if code, _, errs := runTool(t, "init", dir); code != exitProblems || !strings.Contains(errs, "already exists") {
		t.Errorf("second init: exit %d, stderr %q", code, errs)
	}
}

func TestAuthKeyNew(t *testing.T) {
	code, out, errs := runTool(t, "authkey", "new", "--name", "ci", "--tags", "tag:ci", "--reusable")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	key := regexp.MustCompile(`tskey-auth-[A-Za-z0-9]{40}`).FindString(out)
	if key == "" {
		t.Fatalf("no key in output:\n%s", out)
	}
	if !strings.Contains(out, secretHash(key)) {
		t.Errorf("output does not declare the key's hash %s:\n%s", secretHash(key), out)
	}
	_, out2, _ := runTool(t, "authkey", "new")
	if strings.Contains(out2, key) {
		t.Error("two runs printed the same key")
	}
	if code, _, _ := runTool(t, "authkey", "new", "--user", "a@b.c", "--tags", "tag:x"); code != exitUsage {
		t.Errorf("--user with --tags: exit %d, want %d", code, exitUsage)
	}
}

func TestSchemaCommand(t *testing.T) {
	code, out, _ := runTool(t, "schema")
	if code != exitOK || !strings.Contains(out, "authKeys") {
		t.Errorf("schema: exit %d, output lacks authKeys:\n%.300s", code, out)
	}
}
