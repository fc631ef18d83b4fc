package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/gitsync"
	"github.com/tailplane/tailplane/pipeline"
	"github.com/tailplane/tailplane/reconcile"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

// Environment variables serve reads secrets from when no file is given.
const (
	envGitPassword   = "TAILPLANE_GIT_PASSWORD"
	envWebhookSecret = "TAILPLANE_WEBHOOK_SECRET"
)

// gitopsFlags are serve's flags for following a repository.
type gitopsFlags struct {
	repo, branch, path  string
	poll                time.Duration
	gitUser             string
	gitPasswordFile     string
	gitBearer           bool
	gitCAFile           string
	sshKey, knownHosts  string
	sshKeyPassFile      string
	verifyCommits       string
	verifySigners       string
	webhookSecretFile   string
	firstApplyTimeout   time.Duration
	minRetry, maxRetry  time.Duration
	configDir, stateDir string // copied from serveFlags
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

// gitops is the running sync side of serve: source, pipeline and admin API.
type gitops struct {
	src     gitsync.Source
	loop    *pipeline.Pipeline
	applied *schema.Tailnet // applied state read at start, served at once

	closeOnce sync.Once
}

// openSource starts following --repo or --config. It reads the applied
// state first, so the server can serve it before the source answers.
func (g *gitopsFlags) openSource(ctx context.Context, env *cliEnv, st *store.Store, logf func(string, ...any)) (*gitops, error) {
	applied, err := reconcile.LoadApplied(ctx, st)
	if err != nil {
		return nil, err
	}
	var src gitsync.Source
	if g.repo != "" {
		auth := gitsync.Auth{
			Username: g.gitUser, PasswordFile: g.gitPasswordFile, Bearer: g.gitBearer,
			SSHKeyFile: g.sshKey, SSHKeyPassphraseFile: g.sshKeyPassFile, KnownHostsFile: g.knownHosts,
		}
		if auth.PasswordFile == "" && env.getenv(envGitPassword) != "" {
			auth.PasswordEnv = envGitPassword
		}
		src, err = gitsync.NewRepo(ctx, gitsync.Config{
			URL: g.repo, Branch: g.branch, Path: g.path, Poll: g.poll,
			CacheDir: filepath.Join(g.stateDir, "git"), CAFile: g.gitCAFile, Auth: auth,
			VerifyKeyring: g.verifyCommits, VerifyAllowedSigners: g.verifySigners, Logf: logf,
		})
	} else {
		src, err = gitsync.NewDir(ctx, g.configDir, gitsync.DirConfig{Logf: logf})
	}
	if err != nil {
		return nil, err
	}
	return &gitops{src: src, applied: applied}, nil
}

// start runs the sync pipeline, serving through srv.
func (gs *gitops) start(ctx context.Context, g *gitopsFlags, st *store.Store, srv *control.Server, logf func(string, ...any)) error {
	loop, err := pipeline.New(ctx, pipeline.Config{
		Store: st, Source: gs.src, Server: srv,
		MinBackoff: g.minRetry, MaxBackoff: g.maxRetry, Logf: logf,
	})
	if err != nil {
		return err
	}
	gs.loop = loop
	if g.repo != "" {
		return nil // serve the applied state now; the remote may be down
	}
	// A local directory answers at once: wait for its first apply so the
	// server starts with it, and refuse to start on a broken first config.
	wctx, cancel := context.WithTimeout(ctx, g.firstApplyTimeout)
	defer cancel()
	ls, err := loop.Wait(wctx, func(ls pipeline.Status) bool {
		a := ls.Attempted
		return a != nil && (a.OK || ls.Serving || a.Class == pipeline.ClassNeedsNewCommit)
	})
	switch {
	case err == nil && !ls.Attempted.OK && !ls.Serving:
		a := ls.Attempted
		var lines []string
		for _, p := range a.Problems {
			lines = append(lines, p.String())
		}
		return fmt.Errorf("config %s has problems (%s failed) and no revision was ever applied in --state-dir %s, so serve does not start (fix the config and start it again):\n%s",
			g.configDir, a.Step, g.stateDir, strings.Join(lines, "\n"))
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case ls.Serving:
		logf("config %s: not applied after %v; serving the last applied state", g.configDir, g.firstApplyTimeout)
	default:
		logf("config %s: not applied after %v, and nothing is applied yet: serving no tailnet (every registration is refused) until it applies", g.configDir, g.firstApplyTimeout)
	}
	return nil
}

// handler serves the admin API beside the coordination protocol.
func (gs *gitops) handler(st *store.Store, srv *control.Server, secret []byte) http.Handler {
	api := admin.Handler(admin.Config{Pipeline: gs.loop, Served: srv.Tailnet, Store: st, Nodes: srv.NodeCounts, WebhookSecret: secret})
	mux := http.NewServeMux()
	mux.Handle("/api/", api)
	mux.Handle("/metrics", api)
	mux.Handle("/", srv.Handler())
	return mux
}

// close stops the pipeline, then the source; it is safe to call more than once.
func (gs *gitops) close() {
	gs.closeOnce.Do(func() {
		if gs.loop != nil {
			gs.loop.Close()
		}
		gs.src.Close()
	})
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
