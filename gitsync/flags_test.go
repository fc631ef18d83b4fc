package gitsync

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

func TestAddFlags(t *testing.T) {
	var cfg Config
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	cfg.AddFlags(fs)
	err := fs.Parse([]string{
		"--repo", "https://git.example.com/ops/tailnet.git", "--branch", "prod", "--path", "tailnet",
		"--poll", "1m", "--repo-cache-dir", "/var/cache/tailplane", "--git-ca-file", "/ca.pem",
		"--git-username", "bot", "--git-password-file", "/run/secrets/token", "--git-bearer",
		"--ssh-key-file", "/k", "--ssh-key-passphrase-file", "/p", "--ssh-known-hosts", "/kh",
		"--verify-keyring", "/keys.asc", "--verify-allowed-signers", "/allowed",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		URL: "https://git.example.com/ops/tailnet.git", Branch: "prod", Path: "tailnet",
		Poll: time.Minute, CacheDir: "/var/cache/tailplane", CAFile: "/ca.pem",
		Auth: Auth{Username: "bot", PasswordFile: "/run/secrets/token", Bearer: true,
			SSHKeyFile: "/k", SSHKeyPassphraseFile: "/p", KnownHostsFile: "/kh"},
		VerifyKeyring: "/keys.asc", VerifyAllowedSigners: "/allowed",
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if fs.Lookup("git-password") != nil || fs.Lookup("token") != nil {
		t.Error("a flag takes a secret as its value")
	}
}
