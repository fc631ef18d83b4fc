package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/schema")

// goldenDir holds one directory of config files per case and, next to it,
// <case>.golden with the rendered diagnostics and the decoded Tailnet.
const goldenDir = "../testdata/schema"

func TestGolden(t *testing.T) {
	entries, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			tn, ds := LoadDir(context.Background(), filepath.Join(goldenDir, e.Name()))
			got := renderGolden(t, tn, ds)
			file := filepath.Join(goldenDir, e.Name()+".golden")
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test ./schema -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s mismatch (-want +got); run go test ./schema -update if intended:\n%s", file, diff)
			}
		})
	}
}

// renderGolden writes the diagnostics, one per line, then the Tailnet as
// indented JSON (without Source). Every diagnostic's position is checked to
// name a real line and column of its file.
func renderGolden(t *testing.T, tn *Tailnet, ds Diagnostics) []byte {
	var b bytes.Buffer
	b.WriteString("# diagnostics\n")
	for _, d := range ds {
		b.WriteString(d.String())
		b.WriteByte('\n')
		checkPos(t, d)
	}
	b.WriteString("# tailnet\n")
	if tn == nil {
		b.WriteString("nil\n")
		return b.Bytes()
	}
	c := *tn
	c.Source = nil
	j, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b.Write(j)
	b.WriteByte('\n')
	return b.Bytes()
}

// checkPos fails t unless d's position is in a golden input file and,
// except for syntax errors (which may point past the end of a line), on a
// token: the start of a key or value, never blank space.
func checkPos(t *testing.T, d Diagnostic) {
	t.Helper()
	p := d.Pos
	if !p.IsValid() {
		t.Errorf("diagnostic without a position: %v", d)
		return
	}
	var data []byte
	err := filepath.WalkDir(goldenDir, func(path string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() && strings.HasSuffix(filepath.ToSlash(path), "/"+p.File) && data == nil {
			data, err = os.ReadFile(path)
		}
		return err
	})
	if err != nil || data == nil {
		t.Errorf("position %v: file not found", p)
		return
	}
	lines := strings.Split(string(data), "\n")
	if p.Line < 1 || p.Line > len(lines) || p.Col < 1 || p.Col > len(lines[p.Line-1])+1 {
		t.Errorf("position %v is outside its file", p)
		return
	}
	if strings.Contains(d.Message, "syntax error") {
		return
	}
	if line := lines[p.Line-1]; p.Col > len(line) || line[p.Col-1] == ' ' || line[p.Col-1] == '\t' {
		t.Errorf("%v does not point at a token", d)
	}
}
