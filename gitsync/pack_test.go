package gitsync

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/internal/testkit"
)

// packRepo is a repository made with the git CLI whose two commits hold
// files similar enough for git to store them as deltas.
type packRepo struct {
	t      *testing.T
	dir    string
	c1, c2 string
}

func newPackRepo(t *testing.T) *packRepo {
	t.Helper()
	testkit.RequireGit(t)
	dir := t.TempDir()
	r := &packRepo{t: t, dir: dir}
	testkit.Git(t, dir, "init", "-q")
	var base strings.Builder
	for i := range 200 {
		fmt.Fprintf(&base, "line %d of a policy file that git will store as a delta\n", i)
	}
	write := func(name, content string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.hujson", base.String())
	write("acls/b.hujson", base.String()+"// b\n")
	testkit.Git(t, dir, "add", "-A")
	testkit.Git(t, dir, "commit", "-q", "-m", "one")
	r.c1 = testkit.Git(t, dir, "rev-parse", "HEAD")
	write("a.hujson", base.String()+"// changed\n")
	write("acls/c.hujson", "// c\n"+base.String())
	testkit.Git(t, dir, "add", "-A")
	testkit.Git(t, dir, "commit", "-q", "-m", "two")
	r.c2 = testkit.Git(t, dir, "rev-parse", "HEAD")
	return r
}

// pack runs git pack-objects with args and revs on stdin.
func (r *packRepo) pack(revs string, args ...string) []byte {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", r.dir, "pack-objects", "--stdout", "-q", "--revs"}, args...)...)
	cmd.Stdin = strings.NewReader(revs)
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("git pack-objects: %v", err)
	}
	return out
}

// objects lists the objects reachable from revs (git rev-list --objects).
func (r *packRepo) objects(revs ...string) []string {
	r.t.Helper()
	var out []string
	for _, l := range strings.Split(testkit.Git(r.t, r.dir, append([]string{"rev-list", "--objects"}, revs...)...), "\n") {
		h, _, _ := strings.Cut(l, " ")
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// stored lists the objects in s.
func stored(t *testing.T, s *objectStore) []string {
	t.Helper()
	iter, err := s.IterEncodedObjects(plumbing.AnyObject)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if err := iter.ForEach(func(o plumbing.EncodedObject) error {
		out = append(out, o.Hash().String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// packTypes counts the objects of each type in a pack, as stored.
func packTypes(t *testing.T, pack []byte) map[plumbing.ObjectType]int {
	t.Helper()
	sc := packfile.NewScanner(bytes.NewReader(pack))
	_, n, err := sc.Header()
	if err != nil {
		t.Fatal(err)
	}
	types := map[plumbing.ObjectType]int{}
	for range n {
		oh, err := sc.NextObjectHeader()
		if err != nil {
			t.Fatal(err)
		}
		types[oh.Type]++
	}
	return types
}

// TestIngestPack reads packs made by git, undeltified, with offset deltas,
// with reference deltas, and thin (deltas against objects the store
// already holds), and checks the store holds exactly the objects git
// says, with their content intact.
func TestIngestPack(t *testing.T) {
	r := newPackRepo(t)
	for _, tc := range []struct {
		name   string
		first  []byte // ingested before pack, if set
		pack   []byte
		want   []string
		deltas plumbing.ObjectType // the delta type the pack must hold; 0: none
	}{
		{"undeltified", nil, r.pack("HEAD\n", "--depth=0"), r.objects("HEAD"), 0},
		{"offset-deltas", nil, r.pack("HEAD\n", "--delta-base-offset"), r.objects("HEAD"), plumbing.OFSDeltaObject},
		{"ref-deltas", nil, r.pack("HEAD\n"), r.objects("HEAD"), plumbing.REFDeltaObject},
		{"thin", r.pack(r.c1 + "\n"), r.pack(r.c2+"\n^"+r.c1+"\n", "--thin"), r.objects("HEAD"), plumbing.REFDeltaObject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			types := packTypes(t, tc.pack)
			if tc.deltas != 0 && types[tc.deltas] == 0 || tc.deltas == 0 && types[plumbing.OFSDeltaObject]+types[plumbing.REFDeltaObject] != 0 {
				t.Fatalf("the pack holds %v; the case needs %v", types, tc.deltas)
			}
			s := newObjectStore(memory.NewStorage())
			if tc.first != nil {
				if err := s.ingest(bytes.NewReader(tc.first)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.ingest(bytes.NewReader(tc.pack)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, stored(t, s)); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
			// The memory store hashes what it holds: the content is intact
			// when every hash is one git listed.
			if len(s.large) != 0 {
				t.Errorf("large objects recorded: %v", slices.Collect(maps.Keys(s.large)))
			}
		})
	}
}

// FuzzIngestPack feeds arbitrary packs to ingest: it must fail cleanly or
// store objects, never panic, and never keep an object over the limit.
func FuzzIngestPack(f *testing.F) {
	f.Add([]byte("PACK\x00\x00\x00\x02\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, pack []byte) {
		s := newObjectStore(memory.NewStorage())
		if err := s.ingest(bytes.NewReader(pack)); err != nil {
			return
		}
		iter, err := s.IterEncodedObjects(plumbing.AnyObject)
		if err != nil {
			t.Fatal(err)
		}
		_ = iter.ForEach(func(o plumbing.EncodedObject) error {
			if o.Size() > maxObjectBytes {
				t.Fatalf("kept object %s of %d bytes", o.Hash(), o.Size())
			}
			return nil
		})
		for h, n := range s.large {
			if n <= maxObjectBytes {
				t.Fatalf("object %s of %d bytes recorded as large", h, n)
			}
		}
	})
}
