package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/tailplane/tailplane/internal/testkit"

	"github.com/tailplane/tailplane/pipeline"
)

// pgpKey makes an OpenPGP key and, when keyring is set, writes its public
// part there as an armored keyring.
func pgpKey(t *testing.T, name, keyring string) *openpgp.Entity {
	t.Helper()
	ent, err := openpgp.NewEntity(name, "", strings.ToLower(name)+"@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	if keyring != "" {
		var buf bytes.Buffer
		w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ent.Serialize(w); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if err := os.WriteFile(keyring, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ent
}

// signedCommit commits files in the working clone signed by key (go-git
// signs; the git CLI pushes) and returns the SHA.
func (r *remote) signedCommit(msg string, files map[string]string, key *openpgp.Entity) string {
	r.t.Helper()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(r.work, name), []byte(data), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	testkit.Git(r.t, r.work, "add", "-A")
	repo, err := gogit.PlainOpen(r.work)
	if err != nil {
		r.t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	sig := &object.Signature{Name: "Alice Admin", Email: "alice@example.com", When: time.Now()}
	h, err := wt.Commit(msg, &gogit.CommitOptions{Author: sig, Committer: sig, SignKey: key, AllowEmptyCommits: true})
	if err != nil {
		r.t.Fatal(err)
	}
	testkit.Git(r.t, r.work, "push", "-q", "--force", "origin", "HEAD:refs/heads/main")
	return h.String()
}

// TestVerifyCommits follows a remote with --verify-commits: unsigned
// commits and commits signed by an untrusted key are refused like invalid
// ones, and the last trusted commit keeps serving.
func TestVerifyCommits(t *testing.T) {
	r := newRemote(t)
	keyring := filepath.Join(t.TempDir(), "trusted.asc")
	trusted := pgpKey(t, "Trusted", keyring)
	stranger := pgpKey(t, "Stranger", "")

	c1 := r.signedCommit("signed", cfg{allow80: true, carol: true}.files(), trusted)
	srv := startServer(t, serverOpts{stateDir: t.TempDir(), repoURL: r.fileURL(), verifyKeyring: keyring})
	srv.waitApplied(t, c1)

	for _, tc := range []struct {
		name   string
		commit func() string
	}{
		{"unsigned", func() string { return r.commit("unsigned", cfg{carol: true}.files()) }},
		{"untrusted-signer", func() string { return r.signedCommit("stranger", cfg{carol: false}.files(), stranger) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := tc.commit()
			st := srv.waitRefused(t, bad)
			a := st.Attempted
			if a.Step != pipeline.StepFetch || a.Class != "needs a new commit" || len(a.Problems) == 0 {
				t.Errorf("attempt: %s", describe(st))
			}
			if st.Applied.Commit != c1 {
				t.Errorf("applied %s, want %s still", st.Applied.Commit, c1)
			}
			if _, ok := srv.Loop.Applied().Users["carol@example.com"]; !ok {
				t.Error("the refused commit's changes were served")
			}
		})
	}
	c4 := r.signedCommit("signed again", cfg{allow80: false, carol: false}.files(), trusted)
	srv.waitApplied(t, c4)
	revs, err := srv.Store.Revisions(t.Context(), 0)
	if err != nil || len(revs) != 2 || revs[0].Commit != c4 || revs[1].Commit != c1 {
		t.Errorf("history %+v (%v), want only the two trusted commits", revs, err)
	}
}
