package gitsync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// collect receives every revision from src as soon as it is sent, so the
// loop never has to replace a pending one and every emission is seen.
func collect(t *testing.T, src Source) <-chan Revision {
	ch := make(chan Revision, 100)
	go func() {
		defer close(ch)
		for rev := range src.Revisions() {
			ch <- rev
		}
	}()
	return ch
}

func nextFrom(t *testing.T, ch <-chan Revision) Revision {
	t.Helper()
	select {
	case rev, ok := <-ch:
		if !ok {
			t.Fatal("revisions closed")
		}
		return rev
	case <-time.After(testTimeout):
		t.Fatalf("no revision within %v", testTimeout)
	}
	panic("unreachable")
}

// TestDir edits a watched directory: an edit, a new file in a new
// subdirectory (then an edit inside it, which needs the new watch), a
// rewrite with identical content (nothing emitted) and hidden files
// (ignored).
func TestDir(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"tailnet.hujson": "{}", "acls/a.hujson": "[]", ".git/HEAD": "x"})
	d, err := NewDir(testContext(t), dir, DirConfig{Debounce: 10 * time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	revs := collect(t, d)

	want := map[string]string{"tailnet.hujson": "{}", "acls/a.hujson": "[]"}
	check := func(step string) Revision {
		t.Helper()
		rev := nextFrom(t, revs)
		if diff := cmp.Diff(want, readAll(t, rev.FS)); diff != "" {
			t.Fatalf("%s: files (-want +got):\n%s", step, diff)
		}
		if !strings.HasPrefix(rev.ID, "dir:sha256:") {
			t.Errorf("%s: ID %q", step, rev.ID)
		}
		return rev
	}
	first := check("initial")

	writeFiles(t, dir, map[string]string{"tailnet.hujson": `{"users": []}`})
	want["tailnet.hujson"] = `{"users": []}`
	edited := check("edit")

	writeFiles(t, dir, map[string]string{"policy/new/b.hujson": "1"})
	want["policy/new/b.hujson"] = "1"
	check("new file in new subdir")
	writeFiles(t, dir, map[string]string{"policy/new/b.hujson": "2"})
	want["policy/new/b.hujson"] = "2"
	check("edit in new subdir")

	// Same content again, and a hidden file: both are read (the watch
	// fires) but emit nothing; the next revision is the real change.
	st := d.Status()
	writeFiles(t, dir, map[string]string{"tailnet.hujson": `{"users": []}`, ".editor.swp": "junk"})
	waitStatus(t, d, "re-read after the rewrite", func(s Status) bool { return s.LastAttempt.After(st.LastAttempt) })
	if err := os.Remove(filepath.Join(dir, "policy", "new", "b.hujson")); err != nil {
		t.Fatal(err)
	}
	delete(want, "policy/new/b.hujson")
	check("remove")

	// Earlier revisions are snapshots: later edits don't show through.
	if got := readAll(t, first.FS)["tailnet.hujson"]; got != "{}" {
		t.Errorf("first revision changed: tailnet.hujson = %q", got)
	}
	if edited.ID == first.ID {
		t.Error("edit kept the same ID")
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for range revs { // drains, then ends because Close closed the channel
	}
}

// TestDirSymlinks reads a Kubernetes ConfigMap style mount: files link
// through "..data", which is swapped atomically on update.
func TestDirSymlinks(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"..v1/tailnet.hujson": "1", "..v2/tailnet.hujson": "2"})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("..v1", filepath.Join(dir, "..data")))
	must(os.Symlink("..data/tailnet.hujson", filepath.Join(dir, "tailnet.hujson")))
	d, err := NewDir(testContext(t), dir, DirConfig{Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if diff := cmp.Diff(map[string]string{"tailnet.hujson": "1"}, readAll(t, next(t, d).FS)); diff != "" {
		t.Fatalf("initial (-want +got):\n%s", diff)
	}
	must(os.Symlink("..v2", filepath.Join(dir, "..data_tmp")))
	must(os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	if diff := cmp.Diff(map[string]string{"tailnet.hujson": "2"}, readAll(t, next(t, d).FS)); diff != "" {
		t.Fatalf("after swap (-want +got):\n%s", diff)
	}
}

func TestDirErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	writeFiles(t, filepath.Dir(file), map[string]string{"f": "x"})
	for _, dir := range []string{file, filepath.Join(t.TempDir(), "missing")} {
		if _, err := NewDir(testContext(t), dir, DirConfig{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("NewDir(%s) error = %v", dir, err)
		}
	}
}

func TestContentID(t *testing.T) {
	a := t.TempDir()
	b := t.TempDir()
	writeFiles(t, a, map[string]string{"x/y": "1", "z": "2"})
	writeFiles(t, b, map[string]string{"z": "2", "x/y": "1"})
	ra, err := snapshotDir(testContext(t), a)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := snapshotDir(testContext(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if ra.ID != rb.ID {
		t.Errorf("same content, different IDs: %s %s", ra.ID, rb.ID)
	}
	// Moving bytes between name and content must change the ID.
	c := t.TempDir()
	writeFiles(t, c, map[string]string{"x/y": "12", "z": ""})
	if rc, _ := snapshotDir(testContext(t), c); rc.ID == ra.ID {
		t.Error("different content, same ID")
	}
}

// TestDirRecreated removes the watched directory (an error in Status) and
// creates it again with new content, which is then emitted.
func TestDirRecreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tailnet")
	writeFiles(t, dir, map[string]string{"a.hujson": "1"})
	d, err := NewDir(testContext(t), dir, DirConfig{Debounce: 10 * time.Millisecond, Rescan: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	revs := collect(t, d)
	nextFrom(t, revs)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, d, "failing", func(s Status) bool { return s.Failures > 0 })
	if KindOf(st.Err) != ErrRetry || !strings.Contains(st.Err.Error(), "read config dir") {
		t.Errorf("status after removal: %+v", st)
	}
	writeFiles(t, dir, map[string]string{"b.hujson": "2"})
	if diff := cmp.Diff(map[string]string{"b.hujson": "2"}, readAll(t, nextFrom(t, revs).FS)); diff != "" {
		t.Fatalf("after recreation (-want +got):\n%s", diff)
	}
	if st := waitStatus(t, d, "healthy", func(s Status) bool { return s.Failures == 0 }); st.Err != nil {
		t.Errorf("status after recovery: %+v", st)
	}
}
