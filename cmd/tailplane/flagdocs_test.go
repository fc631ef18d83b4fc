package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

// Flag tables in docs/*.md are Markdown tables with a column headed "flag"
// or "flags", each right after a marker naming the command it documents:
//
//	<!-- flags: serve -->
//	| flag | meaning |
//	| --- | --- |
//	| `--listen ADDR` | ... |
//
// A command's flags may be spread over several tables and files. Every
// `--name` in a flag column counts as documented.
var (
	flagMarkerRE = regexp.MustCompile(`^<!-- flags: (\S+) -->$`)
	flagNameRE   = regexp.MustCompile(`--([a-z0-9][a-z0-9-]*)`)
)

// docFlags is where each flag of each command is documented: command →
// flag → "file:line" of its first mention.
type docFlags map[string]map[string]string

// parseFlagDocs reads the flag tables of the Markdown files (name →
// content). problems lists tables it cannot attribute: a flag table with
// no marker, or a marker with no flag table after it.
func parseFlagDocs(files map[string]string) (docs docFlags, problems []string) {
	docs = docFlags{}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		lines := strings.Split(files[name], "\n")
		marker, markerLine := "", 0
		for i := 0; i < len(lines); i++ {
			line := strings.TrimSpace(lines[i])
			if m := flagMarkerRE.FindStringSubmatch(line); m != nil {
				if marker != "" {
					problems = append(problems, fmt.Sprintf("%s:%d: marker for %s is followed by no flag table", name, markerLine, marker))
				}
				marker, markerLine = m[1], i+1
				continue
			}
			if !strings.HasPrefix(line, "|") {
				continue
			}
			// A table: header, separator, rows.
			start := i
			col := flagColumn(tableCells(line))
			for i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), "|") {
				i++
				if i-start < 2 || col < 0 || marker == "" {
					continue // the separator, or not a flag table
				}
				cells := tableCells(strings.TrimSpace(lines[i]))
				if col >= len(cells) {
					continue
				}
				for _, m := range flagNameRE.FindAllStringSubmatch(cells[col], -1) {
					if docs[marker] == nil {
						docs[marker] = map[string]string{}
					}
					if _, ok := docs[marker][m[1]]; !ok {
						docs[marker][m[1]] = fmt.Sprintf("%s:%d", name, i+1)
					}
				}
			}
			switch {
			case col >= 0 && marker == "":
				problems = append(problems, fmt.Sprintf("%s:%d: a flag table without a <!-- flags: COMMAND --> marker before it", name, start+1))
			case col < 0 && marker != "":
				problems = append(problems, fmt.Sprintf("%s:%d: marker for %s is followed by a table with no flag column", name, markerLine, marker))
			}
			marker = ""
		}
		if marker != "" {
			problems = append(problems, fmt.Sprintf("%s:%d: marker for %s is followed by no flag table", name, markerLine, marker))
		}
	}
	return docs, problems
}

// tableCells splits a Markdown table row into its trimmed cells; `\|` is
// a pipe inside a cell.
func tableCells(row string) []string {
	row = strings.TrimSuffix(strings.TrimPrefix(row, "|"), "|")
	var cells []string
	var cell strings.Builder
	for i := 0; i < len(row); i++ {
		switch {
		case row[i] == '\\' && i+1 < len(row) && row[i+1] == '|':
			cell.WriteByte('|')
			i++
		case row[i] == '|':
			cells = append(cells, strings.TrimSpace(cell.String()))
			cell.Reset()
		default:
			cell.WriteByte(row[i])
		}
	}
	return append(cells, strings.TrimSpace(cell.String()))
}

// flagColumn is the index of the header cell "flag" or "flags", or -1.
func flagColumn(header []string) int {
	for i, h := range header {
		if h = strings.ToLower(h); h == "flag" || h == "flags" {
			return i
		}
	}
	return -1
}

// compareFlagDocs lists every difference between the real flags (command
// → flag names) and the documented ones, both ways.
func compareFlagDocs(real map[string][]string, docs docFlags) []string {
	var problems []string
	for _, cmd := range slices.Sorted(maps.Keys(docs)) {
		if _, ok := real[cmd]; !ok {
			locs := slices.Sorted(maps.Values(docs[cmd]))
			problems = append(problems, fmt.Sprintf("%s: a flag table for %q, which is no tailplane command", locs[0], cmd))
			continue
		}
		for _, f := range slices.Sorted(maps.Keys(docs[cmd])) {
			if !slices.Contains(real[cmd], f) {
				problems = append(problems, fmt.Sprintf("%s: documents tailplane %s --%s, which does not exist (remove it from the docs, or add the flag)", docs[cmd][f], cmd, f))
			}
		}
	}
	for _, cmd := range slices.Sorted(maps.Keys(real)) {
		for _, f := range real[cmd] {
			if _, ok := docs[cmd][f]; !ok {
				problems = append(problems, fmt.Sprintf("tailplane %s --%s is in no flag table of docs/*.md (add a row to a table marked <!-- flags: %s -->)", cmd, f, cmd))
			}
		}
	}
	return problems
}

// realFlags builds every command's flag sets, as the command itself does
// (each is run with --help), and returns their flag names, sorted.
func realFlags(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, c := range commands {
		var sets []*pflag.FlagSet
		var stdout, stderr bytes.Buffer
		env := &cliEnv{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" },
			flagSets: func(fs *pflag.FlagSet) { sets = append(sets, fs) }}
		if code := c.run(t.Context(), env, []string{"--help"}); code != exitOK {
			t.Fatalf("%s --help: exit %d\n%s", name, code, stderr.String())
		}
		if len(sets) == 0 {
			t.Fatalf("%s --help built no flag set", name)
		}
		names := []string{}
		for _, fs := range sets {
			fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
		}
		slices.Sort(names)
		out[name] = slices.Compact(names)
	}
	return out
}

// TestFlagDocs: the flag tables of docs/*.md document exactly the flags
// each command has: no flag documented that does not exist, no flag that
// exists undocumented.
func TestFlagDocs(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no docs/*.md (%v)", err)
	}
	files := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files["docs/"+filepath.Base(p)] = string(b)
	}
	docs, problems := parseFlagDocs(files)
	problems = append(problems, compareFlagDocs(realFlags(t), docs)...)
	for _, p := range problems {
		t.Error(p)
	}
}

// TestFlagDocsChecker: the checker finds each kind of disagreement.
func TestFlagDocsChecker(t *testing.T) {
	files := map[string]string{
		"a.md": strings.Join([]string{
			"<!-- flags: serve -->",
			"| flag | meaning |",
			"| --- | --- |",
			"| `--listen ADDR` | where; not `--in-meaning` |",
			"| `--tls-cert F --tls-key F` | both |",
			"",
			"| flag | meaning |",
			"| --- | --- |",
			"| `--unmarked` | a table without a marker |",
			"",
			"<!-- flags: lint -->",
			"| mode | flags |",
			"| --- | --- |",
			"| check | `--format text\\|json` `--gone` |",
			"<!-- flags: nosuch -->",
			"| flag |",
			"|---|",
			"| `--x` |",
			"<!-- flags: plan -->",
			"| key | meaning |",
			"| --- | --- |",
			"<!-- flags: status -->",
		}, "\n"),
	}
	real := map[string][]string{
		"serve": {"listen", "tls-cert", "tls-key", "undocumented"},
		"lint":  {"format"},
		"plan":  {},
	}
	docs, problems := parseFlagDocs(files)
	problems = append(problems, compareFlagDocs(real, docs)...)
	want := []string{
		"a.md:7: a flag table without a <!-- flags: COMMAND --> marker before it",
		"a.md:19: marker for plan is followed by a table with no flag column",
		"a.md:22: marker for status is followed by no flag table",
		"a.md:14: documents tailplane lint --gone, which does not exist (remove it from the docs, or add the flag)",
		`a.md:18: a flag table for "nosuch", which is no tailplane command`,
		"tailplane serve --undocumented is in no flag table of docs/*.md (add a row to a table marked <!-- flags: serve -->)",
	}
	if diff := cmp.Diff(want, problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestNoFlagTakesASecret: secrets come from files or the environment,
// never from a flag value (which ps and shell history show).
func TestNoFlagTakesASecret(t *testing.T) {
	for cmd, names := range realFlags(t) {
		for _, n := range names {
			switch n {
			case "git-password", "token", "api-key", "webhook-secret", "rfc2136-tsig-key", "cloudflare-token", "route53-secret-access-key", "database-url", "database-password":
				t.Errorf("tailplane %s --%s takes a secret as its value; read it from a file or the environment", cmd, n)
			}
		}
	}
}
