package gitsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Config says which repository, branch and directory to follow. Only URL
// is required.
type Config struct {
	// URL is the remote: https://, http://, ssh://, scp-style
	// (git@host:org/repo), file:// or a local path. It must not carry
	// credentials: an http(s) URL with any user info, and any URL with a
	// password, are refused; use Auth. An ssh user name is fine.
	URL string
	// Branch is the branch to follow. Empty: "main".
	Branch string
	// Path is the slash-separated directory inside the repository that
	// holds the config; revisions' FS are rooted there. Empty: the root.
	Path string
	// Poll is how often the remote head is checked. Zero: 30s.
	Poll time.Duration
	// MaxBackoff caps the exponential backoff after failed checks (which
	// starts at Poll and doubles). Zero: 5 minutes; never less than Poll.
	MaxBackoff time.Duration
	// Timeout bounds one check (listing the remote and fetching), so a
	// server that hangs cannot stall the loop. Zero: 2 minutes.
	Timeout time.Duration
	// CacheDir is a directory where the shallow clone is kept across
	// restarts, in a subdirectory named after the URL. Empty: in memory.
	CacheDir string
	// Auth holds the credentials. Zero: none.
	Auth Auth
	// CAFile is a PEM bundle of extra CA certificates trusted for https
	// remotes (a forge with a private CA). Empty: the system roots only.
	CAFile string
	// VerifyKeyring is an armored OpenPGP keyring file (gpg --armor
	// --export). When it or VerifyAllowedSigners is set, only commits
	// signed by a trusted key are emitted. Empty: OpenPGP-signed commits
	// are not trusted.
	VerifyKeyring string
	// VerifyAllowedSigners is an allowed signers file, the format of git's
	// gpg.ssh.allowedSignersFile, for SSH-signed commits. Empty: SSH-signed
	// commits are not trusted. With neither this nor VerifyKeyring set,
	// signatures are not checked.
	VerifyAllowedSigners string
	// Logf receives progress and error messages. Nil: discard.
	Logf func(format string, args ...any)
}

const (
	defaultBranch     = "main"
	defaultPoll       = 30 * time.Second
	defaultMaxBackoff = 5 * time.Minute
	defaultTimeout    = 2 * time.Minute
)

// withDefaults validates cfg and fills in the documented defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.URL == "" {
		return cfg, errors.New("gitsync: no repository URL (hint: --repo https://host/org/tailnet.git)")
	}
	if err := checkURLCredentials(cfg.URL); err != nil {
		return cfg, err
	}
	if _, err := transport.NewEndpoint(cfg.URL); err != nil {
		// The parse error quotes the URL; it carries no credentials (above).
		return cfg, fmt.Errorf("gitsync: bad repository URL: %w", err)
	}
	if err := cfg.Auth.validate(); err != nil {
		return cfg, fmt.Errorf("gitsync: %w", err)
	}
	if cfg.Branch == "" {
		cfg.Branch = defaultBranch
	}
	cfg.Branch = strings.TrimPrefix(cfg.Branch, "refs/heads/")
	p := strings.Trim(cfg.Path, "/")
	if p == "" {
		p = "."
	}
	p = path.Clean(p)
	if !fs.ValidPath(p) {
		return cfg, fmt.Errorf("gitsync: path %q must be a relative directory inside the repository", cfg.Path)
	}
	cfg.Path = p
	if cfg.Poll <= 0 {
		cfg.Poll = defaultPoll
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = defaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.Poll)
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.CAFile != "" {
		if _, err := readCAFile(cfg.CAFile); err != nil {
			return cfg, fmt.Errorf("gitsync: %w", err)
		}
	}
	if cfg.VerifyKeyring != "" {
		if _, err := readKeyring(cfg.VerifyKeyring); err != nil {
			return cfg, fmt.Errorf("gitsync: %w", err)
		}
	}
	if cfg.VerifyAllowedSigners != "" {
		if _, err := readAllowedSigners(cfg.VerifyAllowedSigners); err != nil {
			return cfg, fmt.Errorf("gitsync: %w", err)
		}
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return cfg, nil
}

// Repo follows one branch of a Git remote. Create it with NewRepo.
type Repo struct {
	feed
	cfg Config
}

var _ Source = (*Repo)(nil)

// NewRepo validates cfg, opens the cache and starts following the remote:
// the first check runs at once and the current head is the first revision
// emitted. The loop stops when ctx is done or Close is called.
func NewRepo(ctx context.Context, cfg Config) (*Repo, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &syncer{cfg: cfg}
	if err := s.openStore(false); err != nil {
		return nil, err
	}
	r := &Repo{feed: newFeed(Status{Source: redactURL(cfg.URL), Branch: cfg.Branch, Path: cfg.Path}), cfg: cfg}
	ctx, r.cancel = context.WithCancel(ctx)
	go r.run(ctx, s)
	return r, nil
}

// run is the single goroutine that owns s (the object store and the last
// head seen) and the pending revision.
func (r *Repo) run(ctx context.Context, s *syncer) {
	defer close(r.done)
	defer close(r.out)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var pending *Revision
	for {
		var out chan<- Revision
		var next Revision
		if pending != nil {
			out, next = r.out, *pending
		}
		select {
		case <-ctx.Done():
			return
		case out <- next:
			pending = nil
			continue
		case <-r.trigger:
			timer.Stop()
		case <-timer.C:
		}
		rev, err := s.syncTimeout(ctx)
		if ctx.Err() != nil {
			return
		}
		if rev != nil {
			pending = rev
		}
		timer.Reset(r.record(rev, err))
	}
}

// record publishes the outcome of one check in the status, logs it, and
// returns the delay until the next check.
func (r *Repo) record(rev *Revision, err error) time.Duration {
	now := time.Now()
	delay := r.cfg.Poll
	r.mu.Lock()
	st := &r.status
	st.LastAttempt = now
	st.Err = err
	if rev != nil {
		st.Head = rev.ID
	}
	failures := 0
	if KindOf(err) == ErrRetry {
		st.Failures++
		failures = st.Failures
		delay = backoff(r.cfg.Poll, r.cfg.MaxBackoff, failures)
	} else {
		// The remote answered; a refused commit waits for the next one.
		st.LastSuccess = now
		st.Failures = 0
	}
	st.NextPoll = now.Add(delay)
	source := st.Source
	r.changedLocked()
	r.mu.Unlock()

	if rev != nil {
		r.cfg.Logf("gitsync: %s: new revision %s", source, shortID(rev.ID))
	}
	if failures > 0 {
		r.cfg.Logf("gitsync: %s: %v (attempt %d, retrying in %v)", source, err, failures, delay)
	}
	return delay
}

// backoff is poll doubled for every failure after the first, capped.
func backoff(poll, limit time.Duration, failures int) time.Duration {
	d := poll
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// checkURLCredentials refuses a URL that carries credentials: any user
// info in an http(s) URL (a token is often given as the user name), and a
// password in any URL. A user name alone is fine for ssh, where it is not
// a secret (ssh://git@host/...). The error shows the URL without them.
func checkURLCredentials(raw string) error {
	user, password := userinfo(raw)
	scheme, _, _ := strings.Cut(strings.ToLower(raw), "://")
	if password || user && (scheme == "http" || scheme == "https") {
		return fmt.Errorf("gitsync: the repository URL %s carries credentials in its user info, which would show wherever the URL is printed "+
			"(hint: remove them from the URL, and give the token or password with --git-password-file FILE or in an environment variable "+
			"(docs/gitsync.md, Credentials); --git-username sets the user)", redactURL(raw))
	}
	return nil
}
