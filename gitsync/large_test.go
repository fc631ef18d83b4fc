package gitsync

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"os/exec"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tailplane/tailplane/internal/testkit"
)

// zeros reads as an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// commitBlobs commits, straight into the bare repository with git's
// plumbing, a tree holding files (path -> content) and zero-filled files
// (path -> size), and moves main to it. The zeros are streamed into git
// hash-object, so a large file costs git's time but no test memory.
func (u *upstream) commitBlobs(msg string, files map[string]string, zeroFiles map[string]int64) string {
	u.t.Helper()
	blobs := map[string]string{} // path -> blob hash
	for p, content := range files {
		blobs[p] = testkit.GitInput(u.t, u.bare, strings.NewReader(content), "hash-object", "-w", "--stdin")
	}
	for p, n := range zeroFiles {
		blobs[p] = testkit.GitInput(u.t, u.bare, io.LimitReader(zeros{}, n), "hash-object", "-w", "--stdin")
	}
	tree := u.mktree(blobs, "")
	args := []string{"commit-tree", tree, "-m", msg}
	if parent, err := exec.Command("git", "-C", u.bare, "rev-parse", "--verify", "-q", "refs/heads/main").Output(); err == nil {
		args = append(args, "-p", strings.TrimSpace(string(parent)))
	}
	commit := testkit.Git(u.t, u.bare, args...)
	testkit.Git(u.t, u.bare, "update-ref", "refs/heads/main", commit)
	return commit
}

// mktree writes the tree of the blobs below dir ("" for the root) and
// returns its hash.
func (u *upstream) mktree(blobs map[string]string, dir string) string {
	u.t.Helper()
	var lines []string
	subdirs := map[string]bool{}
	for _, p := range slices.Sorted(maps.Keys(blobs)) {
		rel, ok := strings.CutPrefix(p, dir)
		if !ok {
			continue
		}
		if name, _, nested := strings.Cut(rel, "/"); nested {
			subdirs[name] = true
		} else {
			lines = append(lines, fmt.Sprintf("100644 blob %s\t%s", blobs[p], rel))
		}
	}
	for name := range subdirs {
		lines = append(lines, fmt.Sprintf("040000 tree %s\t%s", u.mktree(blobs, path.Join(dir, name)+"/"), name))
	}
	return testkit.GitInput(u.t, u.bare, strings.NewReader(strings.Join(lines, "\n")+"\n"), "mktree")
}

// allocated returns the bytes f allocated on the heap, in total (not what
// it kept): a size measured, not a time.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// bomb is the size of the zero-filled file in these tests: 64 MiB, over
// 60 KiB once compressed, and four times maxObjectBytes.
const bomb = 64 << 20

// TestSyncLargeFile follows a commit holding a 64 MiB file of zeros (a
// compression bomb: it travels as about 64 KiB). Inside the config tree the
// commit is refused with an error naming the file and the limit; outside
// it (a large asset elsewhere in the repository) the config is served.
// Either way the check allocates far less than the file's size: the file
// is never inflated into memory.
func TestSyncLargeFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		path  string            // Config.Path
		zeros map[string]int64  // zero-filled files
		files map[string]string // what the revision holds; nil: refused
		want  []string          // in the refusal
	}{
		{name: "in-config", zeros: map[string]int64{"acls/big.hujson": bomb},
			want: []string{`"acls/big.hujson"`, "64 MiB", "16 MiB"}},
		{name: "in-config-path", path: "tailnet", zeros: map[string]int64{"tailnet/big.hujson": bomb},
			want: []string{`"tailnet/big.hujson"`, "64 MiB", "16 MiB"}},
		{name: "outside-config-path", path: "tailnet", zeros: map[string]int64{"assets/video.bin": bomb},
			files: v1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpstream(t)
			files := map[string]string{}
			for p, c := range v1 {
				files[path.Join(tc.path, p)] = c
			}
			id := u.commitBlobs("large", files, tc.zeros)
			for _, url := range []string{u.fileURL(), testkit.StartGitServer(t, testkit.GitServerConfig{Root: u.root}).URL("tailnet.git")} {
				s := newSyncer(t, Config{URL: url, Path: tc.path})
				var rev *Revision
				var err error
				n := allocated(func() { rev, err = s.sync(testContext(t)) })
				if tc.files != nil {
					if err != nil {
						t.Fatalf("%s: sync: %v", url, err)
					}
					wantRev(t, rev, id, tc.files)
				} else {
					if rev != nil || KindOf(err) != ErrNeedsCommit {
						t.Fatalf("%s: sync = %v, %v; want the commit refused", url, rev, err)
					}
					for _, w := range tc.want {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("%s: the refusal %q does not mention %s", url, err, w)
						}
					}
				}
				if n > bomb/4 {
					t.Errorf("%s: the check allocated %d MiB for a %d MiB file; want under %d MiB", url, n>>20, bomb>>20, bomb>>22)
				}
			}
		})
	}
}

// TestSyncUnsignedRefusedBeforeBlobs follows an unsigned commit holding a
// large file, with signature verification on: the commit is refused as
// soon as it arrives, before the file is transferred. The file is stored
// uncompressed (core.compression 0), so its transfer is measurable: the
// server is cut off after sending well under its size.
func TestSyncUnsignedRefusedBeforeBlobs(t *testing.T) {
	u := newUpstream(t)
	_, keyring := newKey(t, "Alice", "alice@example.com")
	testkit.Git(t, u.bare, "config", "core.compression", "0")
	u.commitBlobs("unsigned", v1, map[string]int64{"assets/big.bin": bomb})
	var sent atomic.Int64
	srv := testkit.StartGitServer(t, testkit.GitServerConfig{Root: u.root, Wrap: func(backend http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			backend.ServeHTTP(countingWriter{w, &sent}, r)
		})
	}})
	s := newSyncer(t, Config{URL: srv.URL("tailnet.git"), VerifyKeyring: keyring})
	var rev *Revision
	var err error
	n := allocated(func() { rev, err = s.sync(testContext(t)) })
	if rev != nil || KindOf(err) != ErrNeedsCommit || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("sync = %v, %v; want the unsigned commit refused", rev, err)
	}
	if got := sent.Load(); got > bomb/2 {
		t.Errorf("the server sent %d MiB of a %d MiB pack before the commit was refused; want under %d MiB", got>>20, bomb>>20, bomb>>21)
	}
	if n > bomb/4 {
		t.Errorf("the check allocated %d MiB; want under %d MiB", n>>20, bomb>>22)
	}
}

// countingWriter counts the response bytes a handler writes.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
