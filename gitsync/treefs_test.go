package gitsync

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// buildTree writes files (path -> content, "->target" for a symlink) as
// Git objects into a fresh store and returns the root tree hash.
func buildTree(t testing.TB, files map[string]string) (*memory.Storage, plumbing.Hash) {
	t.Helper()
	st := memory.NewStorage()
	put := func(o interface {
		Encode(plumbing.EncodedObject) error
	}) plumbing.Hash {
		eo := st.NewEncodedObject()
		if err := o.Encode(eo); err != nil {
			t.Fatal(err)
		}
		h, err := st.SetEncodedObject(eo)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	blob := func(data string) plumbing.Hash {
		eo := st.NewEncodedObject()
		eo.SetType(plumbing.BlobObject)
		w, _ := eo.Writer()
		w.Write([]byte(data))
		w.Close()
		h, err := st.SetEncodedObject(eo)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	type dir map[string]any // name -> dir or string
	root := dir{}
	for p, data := range files {
		d := root
		elems := splitPath(p)
		for _, e := range elems[:len(elems)-1] {
			sub, ok := d[e].(dir)
			if !ok {
				sub = dir{}
				d[e] = sub
			}
			d = sub
		}
		d[elems[len(elems)-1]] = data
	}
	var write func(d dir) plumbing.Hash
	write = func(d dir) plumbing.Hash {
		tree := &object.Tree{}
		for name, v := range d {
			switch v := v.(type) {
			case dir:
				tree.Entries = append(tree.Entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: write(v)})
			case string:
				mode := filemode.Regular
				if len(v) > 2 && v[:2] == "->" {
					mode, v = filemode.Symlink, v[2:]
				}
				tree.Entries = append(tree.Entries, object.TreeEntry{Name: name, Mode: mode, Hash: blob(v)})
			}
		}
		sortTreeEntries(tree.Entries)
		return put(tree)
	}
	return st, write(root)
}

func splitPath(p string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return out
}

// sortTreeEntries orders entries as Git does: directories compare as if
// their name ended in "/".
func sortTreeEntries(es []object.TreeEntry) {
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && key(es[j]) < key(es[j-1]); j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

var sampleTree = map[string]string{
	"tailnet.hujson":  "{}",
	"acls/a.hujson":   "[]",
	"acls.d/b.hujson": "1", // sorts between "acls" and "acls/" in Git order
	"link.hujson":     "->tailnet.hujson",
	"deep/x/up.cue":   "->../../acls/a.hujson",
	"conf":            "->acls",
	"deep/x/y/z.cue":  "a: 1",
}

func TestTreeFS(t *testing.T) {
	src, root := buildTree(t, sampleTree)
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fsys, err := snapshotTree(testContext(t), src, root, ".", mtime)
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(fsys, "tailnet.hujson", "acls/a.hujson", "acls.d/b.hujson", "deep/x/y/z.cue", "link.hujson", "deep/x/up.cue"); err != nil {
		t.Fatal(err)
	}
	fi, err := fs.Stat(fsys, "link.hujson")
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != 2 || !fi.ModTime().Equal(mtime) || fi.Name() != "link.hujson" {
		t.Errorf("Stat(link.hujson) = %v, %v; want the target's info under the link's name, with the commit time", fi, err)
	}
	got := readAll(t, fsys)
	if got["link.hujson"] != "{}" || got["deep/x/up.cue"] != "[]" {
		t.Errorf("links read as %q and %q", got["link.hujson"], got["deep/x/up.cue"])
	}
	if b, err := fs.ReadFile(fsys, "conf/a.hujson"); string(b) != "[]" || err != nil {
		t.Errorf("through a directory link: %q, %v", b, err)
	}
	if es, err := fs.ReadDir(fsys, "conf"); len(es) != 1 || err != nil {
		t.Errorf("ReadDir(conf) = %v, %v", es, err)
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if (e.Name() == "link.hujson" || e.Name() == "conf") != (e.Type() == fs.ModeSymlink) {
			t.Errorf("ReadDir entry %s has type %v", e.Name(), e.Type())
		}
	}

	src, root = buildTree(t, map[string]string{
		"ok.hujson":      "{}",
		"abs.hujson":     "->/etc/passwd",
		"escape.hujson":  "->../outside.hujson",
		"loop.hujson":    "->loop.hujson",
		"dangling.cue":   "->missing.cue",
		"sub/up2.hujson": "->../../x",
	})
	bad, err := snapshotTree(testContext(t), src, root, ".", mtime)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
	}{
		{"../x", "invalid argument"},
		{"/abs", "invalid argument"},
		{"ok.hujson/", "invalid argument"},
		{"nope", "file does not exist"},
		{"ok.hujson/x", "file does not exist"},
		{"abs.hujson", "outside the config tree"},
		{"escape.hujson", "outside the config tree"},
		{"sub/up2.hujson", "outside the config tree"},
		{"loop.hujson", "too many levels"},
		{"dangling.cue", "file does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bad.Open(tc.name)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open(%q) error = %v, want %q", tc.name, err, tc.want)
			}
		})
	}
	if _, err := bad.Open("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(nope) error %v, want ErrNotExist", err)
	}
}

func FuzzTreeFS(f *testing.F) {
	src, root := buildTree(f, sampleTree)
	fsys, err := snapshotTree(f.Context(), src, root, ".", time.Time{})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{".", "acls", "acls/a.hujson", "../x", "acls//a.hujson", "link.hujson", "deep/x/y/z.cue/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		file, err := fsys.Open(name)
		if err == nil {
			if !fs.ValidPath(name) {
				t.Fatalf("Open(%q) accepted an invalid path", name)
			}
			file.Close()
		}
		_, serr := fsys.Stat(name)
		if (err == nil) != (serr == nil) {
			t.Fatalf("Open(%q) err %v but Stat err %v", name, err, serr)
		}
		fsys.ReadFile(name)
		fsys.ReadDir(name)
	})
}
