package gitsync

import (
	"context"
	"errors"
)

// Head asks the remote for the followed branch's head now, without
// fetching: the ID a revision must have to be the remote's current one.
// A replica about to apply a revision its cache fetched a while ago checks
// with it that the remote has not moved on (package pipeline). It may be
// called from any goroutine; it is bounded by Config.Timeout, and its
// error is redacted as Status.Err is.
func (r *Repo) Head(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	s := &syncer{cfg: r.cfg} // no object store: listing the refs needs none
	auth, secrets, err := s.cfg.Auth.method(s.cfg.URL)
	s.redact = newRedactor(secrets...)
	if err != nil {
		return "", s.redact.err(retryErr("%w", err))
	}
	conn := connOpts{auth: auth}
	if s.cfg.CAFile != "" {
		if conn.ca, err = readCAFile(s.cfg.CAFile); err != nil {
			return "", s.redact.err(retryErr("%w", err))
		}
	}
	head, err := s.lsRemote(ctx, conn)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = retryErr("list %s: no answer within %v: %w", redactURL(s.cfg.URL), s.cfg.Timeout, err)
		}
		return "", s.redact.err(err)
	}
	return head.String(), nil
}

// Head reads the directory now and returns the ID its revision has.
func (d *Dir) Head(ctx context.Context) (string, error) {
	rev, err := snapshotDir(ctx, d.dir)
	if err != nil {
		return "", err
	}
	return rev.ID, nil
}
