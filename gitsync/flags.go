package gitsync

import "github.com/spf13/pflag"

// AddFlags registers the command-line flags that fill cfg, for
// `tailplane serve`. Secrets have only file and environment-variable flags:
// a secret given as a flag value would show in ps and shell history.
func (cfg *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&cfg.URL, "repo", cfg.URL, "Git repository to follow: https://, ssh://, git@host:path, file:// or a local path")
	fs.StringVar(&cfg.Branch, "branch", cfg.Branch, `branch to follow (default "main")`)
	fs.StringVar(&cfg.Path, "path", cfg.Path, "directory inside the repository holding the config (default: the root)")
	fs.DurationVar(&cfg.Poll, "poll", cfg.Poll, "how often to check the remote head (default 30s)")
	fs.StringVar(&cfg.CacheDir, "repo-cache-dir", cfg.CacheDir, "keep the shallow clone in this directory across restarts (default: in memory)")
	fs.StringVar(&cfg.CAFile, "git-ca-file", cfg.CAFile, "PEM CA certificates to trust for https remotes, besides the system roots")
	fs.StringVar(&cfg.Auth.Username, "git-username", cfg.Auth.Username, `HTTP user for the password or token (default "x-access-token")`)
	fs.StringVar(&cfg.Auth.PasswordFile, "git-password-file", cfg.Auth.PasswordFile, "file holding the HTTP password or access token")
	fs.StringVar(&cfg.Auth.PasswordEnv, "git-password-env", cfg.Auth.PasswordEnv, "environment variable holding the HTTP password or access token")
	fs.BoolVar(&cfg.Auth.Bearer, "git-bearer", cfg.Auth.Bearer, `send the token as "Authorization: Bearer" instead of basic auth`)
	fs.StringVar(&cfg.Auth.SSHKeyFile, "ssh-key-file", cfg.Auth.SSHKeyFile, "private key for ssh remotes (default: ssh-agent)")
	fs.StringVar(&cfg.Auth.SSHKeyPassphraseFile, "ssh-key-passphrase-file", cfg.Auth.SSHKeyPassphraseFile, "file holding the ssh key's passphrase")
	fs.StringVar(&cfg.Auth.KnownHostsFile, "ssh-known-hosts", cfg.Auth.KnownHostsFile, "known_hosts file for ssh remotes (default: ~/.ssh/known_hosts)")
	fs.StringVar(&cfg.VerifyKeyring, "verify-keyring", cfg.VerifyKeyring, "armored OpenPGP keyring; only commits signed by its keys are applied")
	fs.StringVar(&cfg.VerifyAllowedSigners, "verify-allowed-signers", cfg.VerifyAllowedSigners, "allowed signers file (git's gpg.ssh.allowedSignersFile); only commits SSH-signed by its keys are applied")
}
