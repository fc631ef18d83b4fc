package gitsync

import (
	"bytes"
	"context"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/tailplane/tailplane/internal/testkit"
)

// testTimeout bounds every wait in these tests; it is a failure deadline,
// never an expected duration.
const testTimeout = 30 * time.Second

// upstream is a real bare repository (the "remote") plus a working clone
// that commits and pushes to it with go-git.
type upstream struct {
	t    testing.TB
	root string // directory holding the bare repo; GIT_PROJECT_ROOT
	bare string // the bare repository
	work string
	repo *git.Repository
}

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	testkit.RequireGit(t) // for git-upload-pack over file:// and git-http-backend
	root := t.TempDir()
	u := &upstream{t: t, root: root, bare: filepath.Join(root, "tailnet.git"), work: t.TempDir()}
	main := &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.Main}}
	if _, err := git.PlainInitWithOptions(u.bare, &git.PlainInitOptions{Bare: true, InitOptions: main.InitOptions}); err != nil {
		t.Fatal(err)
	}
	repo, err := git.PlainInitWithOptions(u.work, main)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{u.bare}}); err != nil {
		t.Fatal(err)
	}
	u.repo = repo
	return u
}

// fileURL is the file:// URL of the bare repository.
func (u *upstream) fileURL() string { return "file://" + filepath.ToSlash(u.bare) }

// commitOpts tweaks one commit.
type commitOpts struct {
	signKey *openpgp.Entity
	// sshKey is a private key file: the commit is made and SSH-signed by
	// the git CLI (which runs ssh-keygen -Y sign).
	sshKey string
	// rewrite resets the branch to the parent of the current head first,
	// so pushing the commit is a force push.
	rewrite bool
}

// commit replaces the working tree with files, commits and pushes it
// (forcing), and returns the commit hash.
func (u *upstream) commit(msg string, files map[string]string, o commitOpts) string {
	u.t.Helper()
	wt, err := u.repo.Worktree()
	if err != nil {
		u.t.Fatal(err)
	}
	if o.rewrite {
		head, err := u.repo.Head()
		if err != nil {
			u.t.Fatal(err)
		}
		c, err := u.repo.CommitObject(head.Hash())
		if err != nil || c.NumParents() == 0 {
			u.t.Fatalf("rewrite needs a head with a parent: %v", err)
		}
		if err := wt.Reset(&git.ResetOptions{Commit: c.ParentHashes[0], Mode: git.HardReset}); err != nil {
			u.t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(u.work)
	if err != nil {
		u.t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != ".git" {
			if err := os.RemoveAll(filepath.Join(u.work, e.Name())); err != nil {
				u.t.Fatal(err)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(u.work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			u.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(files[name]), 0o644); err != nil {
			u.t.Fatal(err)
		}
	}
	// git add -A: go-git's AddWithOptions fails when a file replaces a
	// directory.
	if out, err := exec.Command("git", "-C", u.work, "add", "-A").CombinedOutput(); err != nil {
		u.t.Fatalf("git add: %v\n%s", err, out)
	}
	var h plumbing.Hash
	if o.sshKey != "" {
		cmd := exec.Command("git", "-C", u.work, "-c", "user.name=Alice Admin", "-c", "user.email=alice@example.com",
			"-c", "gpg.format=ssh", "-c", "user.signingkey="+o.sshKey, "commit", "-q", "-S", "--allow-empty", "-m", msg)
		if out, err := cmd.CombinedOutput(); err != nil {
			u.t.Fatalf("git commit -S: %v\n%s", err, out)
		}
		head, err := u.repo.Head()
		if err != nil {
			u.t.Fatal(err)
		}
		h = head.Hash()
	} else {
		sig := &object.Signature{Name: "Alice Admin", Email: "alice@example.com", When: time.Now()}
		h, err = wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig, SignKey: o.signKey, AllowEmptyCommits: true})
		if err != nil {
			u.t.Fatal(err)
		}
	}
	err = u.repo.Push(&git.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{"+refs/heads/main:refs/heads/main"}})
	if err != nil {
		u.t.Fatalf("push: %v", err)
	}
	return h.String()
}

// newKey generates an OpenPGP signing key and writes its public half as an
// armored keyring file.
func newKey(t testing.TB, name, email string) (*openpgp.Entity, string) {
	t.Helper()
	ent, err := openpgp.NewEntity(name, "", email, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return ent, writeKeyring(t, filepath.Join(t.TempDir(), strings.ToLower(name)+".asc"), ent)
}

// writeKeyring writes the public keys of ents to file as one armored
// keyring.
func writeKeyring(t testing.TB, file string, ents ...*openpgp.Entity) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if err := ent.Serialize(w); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// readAll returns every regular file in fsys as path -> content.
func readAll(t testing.TB, fsys fs.FS) map[string]string {
	t.Helper()
	got, err := readFiles(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// readFiles is readAll for goroutines that may not call t.Fatal.
func readFiles(fsys fs.FS) (map[string]string, error) {
	got := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if fi, err := fs.Stat(fsys, p); err == nil && fi.IsDir() {
			return nil // a link to a directory
		}
		b, err := fs.ReadFile(fsys, p)
		got[p] = string(b)
		return err
	})
	return got, err
}

// newSyncer is the Repo loop's state without the loop, so one check can be
// run at a time, deterministically.
func newSyncer(t testing.TB, cfg Config) *syncer {
	t.Helper()
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s := &syncer{cfg: cfg}
	if err := s.openStore(false); err != nil {
		t.Fatal(err)
	}
	return s
}

// next waits for the next revision from src.
func next(t testing.TB, src Source) Revision {
	t.Helper()
	select {
	case rev, ok := <-src.Revisions():
		if !ok {
			t.Fatal("revisions channel closed")
		}
		return rev
	case <-time.After(testTimeout):
		t.Fatalf("no revision within %v; status: %+v", testTimeout, src.Status())
	}
	panic("unreachable")
}

// waitStatus waits until cond holds for src's status.
func waitStatus(t testing.TB, src Source, what string, cond func(Status) bool) Status {
	t.Helper()
	timeout := time.NewTimer(testTimeout)
	defer timeout.Stop()
	for {
		changed := src.Changed() // before Status, so no change is missed
		st := src.Status()
		if cond(st) {
			return st
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("status never reached %q; last: %+v", what, st)
		}
	}
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	t.Cleanup(cancel)
	return ctx
}
