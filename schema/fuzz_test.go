package schema

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"testing/fstest"
	"time"
)

// FuzzLoad feeds arbitrary bytes to the loader as a HuJSON file, as a CUE
// file, as one HuJSON file merged with a fixed one, and as a HuJSON file a
// fixed CUE file refers to. Nothing may panic,
// and the results must keep Load's promises.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"users": {"a@b.c": {"role": "owner"}}, "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`))
	f.Add([]byte("package tailnet\nusers: \"a@b.c\": role: \"admin\"\n"))
	ctx := context.Background()
	fixedCUE := []byte("package tailnet\ngroups: \"group:all\": [for l, _ in users {l}]\n")
	fixed := []byte(`{"tailnet": {"name": "x"}, "users": {"a@b.c": {}}, "tagOwners": {"tag:a": []}}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range []string{"f.hujson", "f.cue"} {
			tn, ds := LoadBytes(ctx, name, data)
			checkResult(t, tn, ds)
		}
		fsys := fstest.MapFS{
			"a.hujson": &fstest.MapFile{Data: fixed},
			"b.hujson": &fstest.MapFile{Data: data},
		}
		tn, ds := Load(ctx, fsys, ".")
		checkResult(t, tn, ds)
		// As data a CUE file refers to.
		fsys["a.cue"] = &fstest.MapFile{Data: fixedCUE}
		delete(fsys, "a.hujson")
		tn, ds = Load(ctx, fsys, ".")
		checkResult(t, tn, ds)
	})
}

func checkResult(t *testing.T, tn *Tailnet, ds Diagnostics) {
	t.Helper()
	if tn != nil && tn.Source == nil {
		t.Error("Tailnet without Source")
	}
	if tn == nil && !ds.HasErrors() {
		t.Errorf("nil Tailnet without an error: %v", ds)
	}
	if !slices.IsSortedFunc(ds, func(a, b Diagnostic) int {
		if a.Pos.File != b.Pos.File {
			return compareStr(a.Pos.File, b.Pos.File)
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Col - b.Pos.Col
	}) {
		t.Errorf("diagnostics not sorted: %v", ds)
	}
	for _, d := range ds {
		if d.Message == "" {
			t.Errorf("diagnostic without message: %+v", d)
		}
	}
}

func compareStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// FuzzParseDuration checks that ParseDuration never panics, never returns
// a negative duration, and that a duration it accepts written back in
// seconds parses to the same value.
func FuzzParseDuration(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v, negative", s, d)
		}
		back := strconv.FormatInt(int64(d/time.Second), 10) + "s"
		if d == 0 {
			back = "0"
		}
		if d2, err := ParseDuration(back); err != nil || d2 != d {
			t.Fatalf("ParseDuration(%q) = %v; written back as %q it parses to %v, %v", s, d, back, d2, err)
		}
	})
}
