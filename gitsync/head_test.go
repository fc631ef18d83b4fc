package gitsync

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHead: Repo.Head answers the remote's head as it is now, while the
// loop has not fetched it (its poll is far off), and the revision fetched
// then names its parent; a remote that is gone is an error, and the
// directory source's Head is its current content's ID.
func TestHead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	u := newUpstream(t)
	first := u.commit("one", map[string]string{"tailnet.hujson": `{}`}, commitOpts{})
	r, err := NewRepo(ctx, Config{URL: u.fileURL(), Poll: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if rev := <-r.Revisions(); rev.ID != first {
		t.Fatalf("first revision %s; want %s", rev.ID, first)
	}
	second := u.commit("two", map[string]string{"tailnet.hujson": `{"x": 1}`}, commitOpts{})
	if head, err := r.Head(ctx); err != nil || head != second {
		t.Errorf("Head = %s, %v; want %s, the remote's new head", head, err, second)
	}
	if st := r.Status(); st.Head != first {
		t.Errorf("Status().Head = %s; want %s: Head fetches nothing", st.Head, first)
	}
	r.Trigger()
	if rev := <-r.Revisions(); rev.ID != second || len(rev.Parents) != 1 || rev.Parents[0] != first {
		t.Errorf("second revision %s with parents %v; want %s with parent %s", rev.ID, rev.Parents, second, first)
	}
	if err := os.Rename(u.bare, u.bare+".gone"); err != nil {
		t.Fatal(err)
	}
	if head, err := r.Head(ctx); err == nil || KindOf(err) != ErrRetry {
		t.Errorf("Head of a remote that is gone = %s, %v; want a retry-later error", head, err)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tailnet.hujson"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := NewDir(ctx, dir, DirConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rev := <-d.Revisions()
	if head, err := d.Head(ctx); err != nil || head != rev.ID || !strings.HasPrefix(head, "dir:sha256:") {
		t.Errorf("Dir.Head = %s, %v; want %s", head, err, rev.ID)
	}
}
