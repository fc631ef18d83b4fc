package gitsync

import (
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/tailplane/tailplane/schema"
)

var addrCmp = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmpopts.IgnoreFields(schema.Tailnet{}, "Source"), // positions; unexported fields
}

// readExample returns the files of examples/<name> as path -> content.
func readExample(t *testing.T, name string) map[string]string {
	t.Helper()
	dir := filepath.Join("..", "examples", name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

// TestRevisionLoadsWithSchema is the contract with the next stage: a
// revision's FS (from Git, under --path, and from a directory) loads with
// schema.Load exactly like the same files on disk.
func TestRevisionLoadsWithSchema(t *testing.T) {
	ctx := testContext(t)
	for _, example := range []string{"basic", "company"} {
		t.Run(example, func(t *testing.T) {
			want, diags := schema.LoadDir(ctx, filepath.Join("..", "examples", example))
			if diags.HasErrors() {
				t.Fatalf("examples/%s does not load: %v", example, diags)
			}
			files := readExample(t, example)
			repoFiles := map[string]string{"README.md": "not config"}
			for name, data := range files {
				repoFiles["tailnet/"+name] = data
			}
			u := newUpstream(t)
			u.commit("example", repoFiles, commitOpts{})
			rev := syncRev(t, newSyncer(t, Config{URL: u.fileURL(), Path: "tailnet"}))

			dir := t.TempDir()
			writeFiles(t, dir, files)
			dirRev, err := snapshotDir(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			for name, fsys := range map[string]fs.FS{"git": rev.FS, "dir": dirRev.FS} {
				got, diags := schema.Load(ctx, fsys, ".")
				if diags.HasErrors() {
					t.Fatalf("%s revision does not load: %v", name, diags)
				}
				if diff := cmp.Diff(want, got, addrCmp); diff != "" {
					t.Errorf("%s revision loads differently from the directory (-want +got):\n%s", name, diff)
				}
			}
		})
	}
}
