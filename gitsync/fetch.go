package gitsync

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
)

// freshEvery bounds how many incremental fetches go into one object store
// before the next fetch starts from an empty one. go-git never garbage
// collects, so this keeps a long-running server's memory (or cache
// directory) from growing with every commit.
const freshEvery = 64

// syncer holds the state of one Repo loop. Only the loop goroutine uses it.
type syncer struct {
	cfg     Config
	repo    *git.Repository
	store   *objectStore // repo's storage
	fetches int          // fetches into repo since it was created

	seen         plumbing.Hash // last head emitted or refused
	refused      error         // the ErrNeedsCommit error for seen, if refused
	refusedTrust string        // trust() when seen was refused
	redact       redactor      // knows the secrets read for the current check
}

// logf logs a line of the current check, redacted.
func (s *syncer) logf(format string, args ...any) { s.redact.logf(s.cfg.Logf, format, args...) }

// trust fingerprints the trusted key files, so a refused head is checked
// again when they change (a newly trusted key, a fixed allowed signers
// file) without waiting for a new commit.
func (s *syncer) trust() string {
	h := sha256.New()
	for _, f := range []string{s.cfg.VerifyKeyring, s.cfg.VerifyAllowedSigners} {
		if f != "" {
			b, _ := os.ReadFile(f) // a read error shows when verifying
			h.Write(b)
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// syncTimeout is sync bounded by Config.Timeout.
func (s *syncer) syncTimeout(ctx context.Context) (*Revision, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	rev, err := s.sync(ctx)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		err = retryErr("check %s: no answer within %v: %w", redactURL(s.cfg.URL), s.cfg.Timeout, err)
	}
	return rev, err
}

// sync checks the remote and returns the new revision, if any. A refused
// head keeps returning its error until the branch moves. The error is
// redacted: it holds none of the credentials read for the check.
func (s *syncer) sync(ctx context.Context) (*Revision, error) {
	auth, secrets, err := s.cfg.Auth.method(s.cfg.URL)
	s.redact = newRedactor(secrets...)
	if err != nil {
		return nil, s.redact.err(retryErr("%w", err))
	}
	rev, err := s.check(ctx, auth)
	return rev, s.redact.err(err)
}

// check is sync once the credentials are read.
func (s *syncer) check(ctx context.Context, auth transport.AuthMethod) (*Revision, error) {
	var ca []byte
	if s.cfg.CAFile != "" {
		var err error
		if ca, err = readCAFile(s.cfg.CAFile); err != nil {
			return nil, retryErr("%w", err)
		}
	}
	conn := connOpts{auth: auth, ca: ca}
	head, err := s.lsRemote(ctx, conn)
	if err != nil {
		return nil, err
	}
	if head == s.seen && (s.refused == nil || s.trust() == s.refusedTrust) {
		return nil, s.refused
	}
	commit, rev, err := s.fetch(ctx, conn, head)
	if KindOf(err) == ErrRetry {
		return nil, err
	}
	s.seen, s.refused = commit, s.redact.err(err)
	if err != nil {
		s.refusedTrust = s.trust()
		s.logf("gitsync: %s: %v", redactURL(s.cfg.URL), err)
	}
	return rev, err
}

func (s *syncer) branchRef() plumbing.ReferenceName {
	return plumbing.NewBranchReferenceName(s.cfg.Branch)
}

func (s *syncer) trackingRef() plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName(git.DefaultRemoteName, s.cfg.Branch)
}

// connOpts is what every request to the remote needs.
type connOpts struct {
	auth transport.AuthMethod
	ca   []byte // extra trusted CA certificates, PEM
}

// readCAFile reads a PEM bundle of CA certificates.
func readCAFile(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("read CA file %s: no PEM certificates", file)
	}
	return b, nil
}

// lsRemote asks the remote for the branch head without fetching objects.
func (s *syncer) lsRemote(ctx context.Context, conn connOpts) (plumbing.Hash, error) {
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{s.cfg.URL}})
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: conn.auth, CABundle: conn.ca})
	if err != nil {
		return plumbing.ZeroHash, retryErr("list %s: %w%s", redactURL(s.cfg.URL), err, hintFor(err))
	}
	want := s.branchRef()
	var branches []string
	for _, ref := range refs {
		if ref.Name() == want && ref.Type() == plumbing.HashReference {
			return ref.Hash(), nil
		}
		if ref.Name().IsBranch() {
			branches = append(branches, ref.Name().Short())
		}
	}
	slices.Sort(branches)
	return plumbing.ZeroHash, retryErr("list %s: no branch %q (hint: check --branch; the remote has %q)", redactURL(s.cfg.URL), s.cfg.Branch, branches)
}

func hintFor(err error) string {
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired):
		return " (hint: give credentials with a password/token file or environment variable)"
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return " (hint: the credentials were refused; check the token and its scopes)"
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return " (hint: check the URL, and that the credentials can read the repository)"
	}
	return ""
}

// errObjects marks a store that lacks objects it should hold.
var errObjects = errors.New("objects missing from the local store")

// fetch brings the commit at the branch head into the store, shallowly,
// and makes its revision. When the store cannot be updated in place, or
// lacks objects afterwards, it is replaced by an empty one and the fetch
// repeated, first shallow, then in full for servers that cannot serve
// shallow packs. It returns the head as fetched, which may be newer than
// want if the branch moved meanwhile; the error is the revision's.
func (s *syncer) fetch(ctx context.Context, conn connOpts, want plumbing.Hash) (plumbing.Hash, *Revision, error) {
	if c, err := s.repo.CommitObject(want); err == nil {
		// Already here, e.g. from a cache directory.
		if rev, err := s.revision(ctx, c); !errors.Is(err, errObjects) {
			return c.Hash, rev, err
		}
	}
	attempts := []struct {
		fresh bool
		depth int
	}{{false, 1}, {true, 1}, {true, 0}}
	if s.fetches >= freshEvery {
		attempts = attempts[1:]
	}
	var errs []error
	for _, a := range attempts {
		if a.fresh {
			if err := s.openStore(true); err != nil {
				return plumbing.ZeroHash, nil, retryErr("%w", err)
			}
		}
		c, err := s.fetchOnce(ctx, conn, want, a.depth)
		var refused *SyncError
		if errors.As(err, &refused) && refused.Kind == ErrNeedsCommit {
			return plumbing.NewHash(refused.Commit), nil, refused
		}
		if err == nil {
			var rev *Revision
			if rev, err = s.revision(ctx, c); !errors.Is(err, errObjects) {
				return c.Hash, rev, err
			}
		}
		if ctx.Err() != nil {
			return plumbing.ZeroHash, nil, ctx.Err()
		}
		errs = append(errs, err)
		s.logf("gitsync: %s: fetch (depth %d, fresh store %v) failed: %v", redactURL(s.cfg.URL), a.depth, a.fresh, err)
	}
	return plumbing.ZeroHash, nil, retryErr("fetch %s: %w", redactURL(s.cfg.URL), errors.Join(errs...))
}

// fetchOnce fetches the branch head into the store. With verification on,
// the commit want is verified as soon as the pack delivers it, and a
// refusal (an ErrNeedsCommit error) ends the fetch before the files
// arrive.
func (s *syncer) fetchOnce(ctx context.Context, conn connOpts, want plumbing.Hash, depth int) (*object.Commit, error) {
	s.fetches++
	var onCommit func(*object.Commit) error
	if s.cfg.verifying() {
		onCommit = func(c *object.Commit) error {
			if _, err := verifyCommit(c, s.cfg); KindOf(err) == ErrNeedsCommit {
				return err
			}
			return nil // verified, or a key file unreadable: revision() reports it
		}
	}
	s.store.expect(ctx, want, onCommit)
	defer s.store.expect(context.Background(), plumbing.ZeroHash, nil)
	spec := config.RefSpec(fmt.Sprintf("+%s:%s", s.branchRef(), s.trackingRef()))
	err := s.repo.FetchContext(ctx, &git.FetchOptions{
		RefSpecs: []config.RefSpec{spec},
		Depth:    depth,
		Auth:     conn.auth,
		CABundle: conn.ca,
		Tags:     git.NoTags,
		Force:    true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, err
	}
	ref, err := s.repo.Reference(s.trackingRef(), true)
	if err != nil {
		return nil, err
	}
	id := ref.Hash().String()
	if err := s.store.tooLarge(ref.Hash(), "the commit object"); err != nil {
		return nil, commitErr(id, err)
	}
	c, err := s.repo.CommitObject(ref.Hash())
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", ref.Hash(), err)
	}
	if err := s.store.tooLarge(c.TreeHash, "the root tree object"); err != nil {
		return nil, commitErr(id, err)
	}
	if _, err := c.Tree(); err != nil {
		return nil, fmt.Errorf("commit %s: %w", ref.Hash(), err)
	}
	return c, nil
}

// openStore opens (or with fresh, recreates) the object store and makes
// sure its origin remote points at the configured URL.
func (s *syncer) openStore(fresh bool) error {
	s.fetches = 0
	var repo *git.Repository
	var err error
	if s.cfg.CacheDir == "" {
		repo, err = git.Init(memory.NewStorage(), nil)
	} else {
		dir := filepath.Join(s.cfg.CacheDir, cacheName(s.cfg.URL))
		if fresh {
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("gitsync: reset cache: %w", err)
			}
		}
		repo, err = git.PlainOpen(dir)
		if err != nil && !fresh && !errors.Is(err, git.ErrRepositoryNotExists) {
			s.logf("gitsync: cache %s is unusable (%v); starting it afresh", dir, err)
			return s.openStore(true)
		}
		if errors.Is(err, git.ErrRepositoryNotExists) {
			repo, err = git.PlainInit(dir, true)
		}
	}
	if err != nil {
		return fmt.Errorf("gitsync: open object store: %w (hint: check the cache directory, or remove it)", err)
	}
	// The same storage, with fetched packs read by objectStore.ingest.
	store := newObjectStore(repo.Storer)
	if repo, err = git.Open(store, nil); err != nil {
		return fmt.Errorf("gitsync: open object store: %w (hint: check the cache directory, or remove it)", err)
	}
	rem, err := repo.Remote(git.DefaultRemoteName)
	if err == nil && (len(rem.Config().URLs) != 1 || rem.Config().URLs[0] != s.cfg.URL) {
		if err := repo.DeleteRemote(git.DefaultRemoteName); err != nil {
			return fmt.Errorf("gitsync: update cached remote: %w", err)
		}
		err = git.ErrRemoteNotFound
	}
	if errors.Is(err, git.ErrRemoteNotFound) {
		_, err = repo.CreateRemote(&config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{s.cfg.URL}})
	}
	if err != nil {
		return fmt.Errorf("gitsync: configure remote: %w", err)
	}
	s.repo, s.store = repo, store
	return nil
}

// cacheName is the cache subdirectory for a URL: readable enough to find,
// unique per URL.
func cacheName(url string) string {
	sum := sha256.Sum256([]byte(url))
	return "repo-" + hex.EncodeToString(sum[:8]) + ".git"
}

// revision verifies c and snapshots its tree at the configured path.
func (s *syncer) revision(ctx context.Context, c *object.Commit) (*Revision, error) {
	id := c.Hash.String()
	var signer string
	if s.cfg.verifying() {
		var err error
		if signer, err = verifyCommit(c, s.cfg); err != nil {
			return nil, err
		}
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, retryErr("commit %s: %w: %v", shortID(id), errObjects, err)
	}
	root := tree.Hash
	if s.cfg.Path != "." {
		e, err := tree.FindEntry(s.cfg.Path)
		if errors.Is(err, object.ErrDirectoryNotFound) || errors.Is(err, object.ErrEntryNotFound) {
			return nil, commitErr(id, fmt.Errorf("path %q not found in the tree (hint: check --path)", s.cfg.Path))
		}
		if err != nil {
			return nil, retryErr("commit %s: %w: %v", shortID(id), errObjects, err)
		}
		if e.Mode != filemode.Dir {
			return nil, commitErr(id, fmt.Errorf("path %q is not a directory", s.cfg.Path))
		}
		root = e.Hash
	}
	fsys, err := snapshotTree(ctx, s.repo.Storer, root, s.cfg.Path, c.Committer.When)
	if errors.Is(err, errTooLarge) {
		return nil, commitErr(id, err)
	}
	if err != nil {
		return nil, retryErr("commit %s: %w: %v", shortID(id), errObjects, err)
	}
	var parents []string
	for _, p := range c.ParentHashes {
		parents = append(parents, p.String())
	}
	return &Revision{
		ID:          id,
		Parents:     parents,
		Author:      fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
		Message:     c.Message,
		CommittedAt: c.Committer.When,
		FS:          fsys,
		Verified:    signer,
	}, nil
}
