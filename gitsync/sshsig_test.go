package gitsync

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// newSSHKey writes a new ed25519 private key file and returns it with the
// public key in authorized_keys form.
func newSSHKey(t testing.TB, name string) (file, authorized string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return file, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

func writeTemp(t testing.TB, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSyncVerifySSH checks commits SSH-signed by the git CLI against an
// allowed signers file.
func TestSyncVerifySSH(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatal("git signs with ssh-keygen, which is not on PATH (install openssh-client)")
	}
	alice, alicePub := newSSHKey(t, "alice")
	mallory, _ := newSSHKey(t, "mallory")
	pgp, keyring := newKey(t, "Alice", "alice@example.com")
	past := time.Now().Add(-48*time.Hour).UTC().Format("20060102") + "Z"

	for _, tc := range []struct {
		name    string
		signers string // allowed signers content; empty: none configured
		keyring string
		opts    func() commitOpts
		want    string // Verified on success, else an error substring
		ok      bool
	}{
		{"allowed", "alice@example.com " + alicePub, "", func() commitOpts { return commitOpts{sshKey: alice} }, "alice@example.com", true},
		{"namespaces-git", `alice@example.com,ops@example.com namespaces="git,file" ` + alicePub, "", func() commitOpts { return commitOpts{sshKey: alice} }, "alice@example.com,ops@example.com", true},
		{"other-key", "alice@example.com " + alicePub, "", func() commitOpts { return commitOpts{sshKey: mallory} }, "not an allowed signer", false},
		{"wrong-namespace", `alice@example.com namespaces="file" ` + alicePub, "", func() commitOpts { return commitOpts{sshKey: alice} }, "not an allowed signer", false},
		{"expired", `alice@example.com valid-before="` + past + `" ` + alicePub, "", func() commitOpts { return commitOpts{sshKey: alice} }, "not an allowed signer", false},
		{"unsigned", "alice@example.com " + alicePub, "", func() commitOpts { return commitOpts{} }, "not signed", false},
		{"ssh-without-signers", "", keyring, func() commitOpts { return commitOpts{sshKey: alice} }, "no allowed signers file", false},
		{"pgp-without-keyring", "alice@example.com " + alicePub, "", func() commitOpts { return commitOpts{signKey: pgp} }, "no OpenPGP keyring", false},
		{"both-pgp", "alice@example.com " + alicePub, keyring, func() commitOpts { return commitOpts{signKey: pgp} }, "Alice <alice@example.com>", true},
		{"both-ssh", "alice@example.com " + alicePub, keyring, func() commitOpts { return commitOpts{sshKey: alice} }, "alice@example.com", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpstream(t)
			c := u.commit(tc.name, v1, tc.opts())
			cfg := Config{URL: u.fileURL(), VerifyKeyring: tc.keyring}
			if tc.signers != "" {
				cfg.VerifyAllowedSigners = writeTemp(t, "allowed_signers", "# trusted\n"+tc.signers+"\n")
			}
			rev, err := newSyncer(t, cfg).sync(testContext(t))
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				wantRev(t, rev, c, v1)
				if rev.Verified != tc.want {
					t.Errorf("Verified = %q, want %q", rev.Verified, tc.want)
				}
				return
			}
			if rev != nil || KindOf(err) != ErrNeedsCommit || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("sync = %v, %v; want ErrNeedsCommit containing %q", rev, err, tc.want)
			}
		})
	}

	t.Run("tampered", func(t *testing.T) {
		u := newUpstream(t)
		h := u.commit("signed", v1, commitOpts{sshKey: alice})
		c, err := u.repo.CommitObject(plumbing.NewHash(h))
		if err != nil {
			t.Fatal(err)
		}
		msg, err := unsignedBytes(c)
		if err != nil {
			t.Fatal(err)
		}
		signers, err := parseAllowedSigners([]byte("a " + alicePub))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verifySSHSignature(c.PGPSignature, msg, signers, c.Committer.When); err != nil {
			t.Fatalf("untampered: %v", err)
		}
		msg[len(msg)-2] ^= 1
		if _, err := verifySSHSignature(c.PGPSignature, msg, signers, c.Committer.When); err == nil || !strings.Contains(err.Error(), "does not verify") {
			t.Fatalf("tampered message: err = %v", err)
		}
	})
}

func TestParseAllowedSigners(t *testing.T) {
	_, pub := newSSHKey(t, "k")
	day := func(s string) time.Time {
		v, err := time.ParseInLocation("20060102", s, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	type row struct {
		Principals              string
		Namespaces              []string
		ValidAfter, ValidBefore time.Time
	}
	for _, tc := range []struct {
		name, in string
		want     []row
		err      string
	}{
		{"plain", pub, nil, "public key"}, // principals missing: the key type is taken as principals
		{"one", "a@x " + pub + " laptop", []row{{Principals: "a@x"}}, ""},
		{"comments-and-blanks", "# c\n\n  a@x " + pub + "\n", []row{{Principals: "a@x"}}, ""},
		{"quoted-principals", `"a@x,b@x" ` + pub, []row{{Principals: "a@x,b@x"}}, ""},
		{"options", `a@x namespaces="git,file",valid-after="20250101Z",valid-before="20300101Z" ` + pub,
			[]row{{Principals: "a@x", Namespaces: []string{"git", "file"}, ValidAfter: day("20250101"), ValidBefore: day("20300101")}}, ""},
		{"cert-authority-skipped", "*@x cert-authority " + pub, nil, ""},
		{"unknown-option", "a@x no-touch-required " + pub, nil, "unknown option"},
		{"bad-time", `a@x valid-after="2025" ` + pub, nil, "bad time"},
		{"unterminated", `"a@x ` + pub, nil, "unterminated"},
		{"no-key", "a@x", nil, "want principals"},
		{"bad-key", "a@x ssh-ed25519 AAAA", nil, "public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseAllowedSigners([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var rows []row
			for _, s := range got {
				rows = append(rows, row{s.principals, s.namespaces, s.validAfter, s.validBefore})
			}
			if diff := cmp.Diff(tc.want, rows); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseAllowedSigners(f *testing.F) {
	f.Add("a@x ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c")
	f.Add(`"a b" namespaces="git",valid-after="20250101Z" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl`)
	f.Add("# only a comment\n\n")
	f.Add(`"unterminated`)
	f.Fuzz(func(t *testing.T, in string) {
		signers, err := parseAllowedSigners([]byte(in))
		if err != nil {
			return
		}
		for _, s := range signers {
			if s.principals == "" || s.key == nil {
				t.Fatalf("parsed %q into a signer without principals or key", in)
			}
		}
	})
}

func FuzzParseSSHSignature(f *testing.F) {
	f.Add(sshSigBegin + "\nU1NIU0lHAAAAAQ==\n" + sshSigEnd)
	f.Add(sshSigBegin + "\n" + sshSigEnd)
	f.Add("-----BEGIN PGP SIGNATURE-----")
	f.Fuzz(func(t *testing.T, in string) {
		sig, err := parseSSHSignature(in)
		if err == nil && sig.Version != 1 {
			t.Fatalf("accepted version %d", sig.Version)
		}
		// Verification of garbage must fail cleanly, never panic.
		if _, err := verifySSHSignature(in, []byte("msg"), nil, time.Now()); err == nil {
			t.Fatal("verified a signature against no signers")
		}
	})
}
