package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/tailplane/tailplane/gitsync"
)

// Environment variables serve reads secrets from when no file is given.
const (
	envGitPassword   = "TAILPLANE_GIT_PASSWORD"
	envWebhookSecret = "TAILPLANE_WEBHOOK_SECRET"
)

// gitopsFlags are serve's flags for following a repository.
type gitopsFlags struct {
	repo, branch, path string
	poll               time.Duration
	gitUser            string
	gitPasswordFile    string
	gitBearer          bool
	gitCAFile          string
	sshKey, knownHosts string
	sshKeyPassFile     string
	verifyCommits      string
	verifySigners      string
	webhookSecretFile  string
	firstApplyTimeout  time.Duration
	minRetry, maxRetry time.Duration
}

func (g *gitopsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&g.repo, "repo", "", "Git remote to follow: https://, ssh://, git@host:repo, file:// or a local path (instead of --config)")
	fs.StringVar(&g.branch, "branch", "main", "branch of --repo to follow")
	fs.StringVar(&g.path, "path", "", "directory inside --repo holding the config (default: the root)")
	fs.DurationVar(&g.poll, "poll", 30*time.Second, "how often --repo is checked for a new commit (a webhook makes it immediate)")
	fs.StringVar(&g.gitUser, "git-username", "", `HTTP user for --repo (default "x-access-token" when a password is set)`)
	fs.StringVar(&g.gitPasswordFile, "git-password-file", "", "file holding the HTTP password or access token for --repo (default: $"+envGitPassword+")")
	fs.BoolVar(&g.gitBearer, "git-bearer", false, "send the --repo token as a bearer token instead of basic auth")
	fs.StringVar(&g.gitCAFile, "git-ca-file", "", "PEM CA certificates trusted for https remotes besides the system roots (a Git host with a private CA)")
	fs.StringVar(&g.sshKey, "ssh-key", "", "private key file for ssh remotes (default: the ssh-agent)")
	fs.StringVar(&g.sshKeyPassFile, "ssh-key-passphrase-file", "", "file holding the passphrase of --ssh-key (default: the key is not encrypted)")
	fs.StringVar(&g.knownHosts, "known-hosts", "", "known_hosts file for ssh remotes (default: $SSH_KNOWN_HOSTS or ~/.ssh/known_hosts)")
	fs.StringVar(&g.verifyCommits, "verify-commits", "", "armored OpenPGP keyring: only commits signed by one of its keys are applied")
	fs.StringVar(&g.verifySigners, "verify-allowed-signers", "", "git allowed-signers file: only commits SSH-signed by one of its keys are applied")
	fs.StringVar(&g.webhookSecretFile, "webhook-secret-file", "", "file holding the push webhook's HMAC secret (default: $"+envWebhookSecret+"; none: the webhook is off)")
	fs.DurationVar(&g.minRetry, "retry-min", time.Second, "first backoff after a transient apply failure")
	fs.DurationVar(&g.maxRetry, "retry-max", 5*time.Minute, "longest backoff after transient apply failures")
	fs.DurationVar(&g.firstApplyTimeout, "config-wait", 30*time.Second, "with --config, how long to wait for the directory's first apply before serving")
}

// repoConfig is the gitsync configuration of --repo (none without it).
// Its cache directory and log are the server's defaults: <state-dir>/git
// and serve's log.
func (g *gitopsFlags) repoConfig(env *cliEnv) gitsync.Config {
	if g.repo == "" {
		return gitsync.Config{}
	}
	auth := gitsync.Auth{
		Username: g.gitUser, PasswordFile: g.gitPasswordFile, Bearer: g.gitBearer,
		SSHKeyFile: g.sshKey, SSHKeyPassphraseFile: g.sshKeyPassFile, KnownHostsFile: g.knownHosts,
	}
	if auth.PasswordFile == "" && env.getenv(envGitPassword) != "" {
		auth.PasswordEnv = envGitPassword
	}
	return gitsync.Config{
		URL: g.repo, Branch: g.branch, Path: g.path, Poll: g.poll, CAFile: g.gitCAFile, Auth: auth,
		VerifyKeyring: g.verifyCommits, VerifyAllowedSigners: g.verifySigners,
	}
}

// readSecretFile reads a secret from file (trimmed), else from the
// environment variable env; both empty gives nil.
func readSecretFile(file, env string, getenv func(string) string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading secret: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return nil, fmt.Errorf("secret file %s is empty", file)
		}
		return []byte(s), nil
	}
	if v := strings.TrimSpace(getenv(env)); v != "" {
		return []byte(v), nil
	}
	return nil, nil
}

// stampedLogf logs to env.stderr with a UTC timestamp, as serve does.
func stampedLogf(env *cliEnv) func(string, ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(env.stderr, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
	}
}
