package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrSuperseded is AddRevision's error, under WithApplierFence, for a
// commit older than one already applied: one recorded before and
// superseded since, or the parent of a recorded revision (Revision.Parents).
// Replicas never go back: a replica whose Git cache (or remote) is behind
// the one that applied last would otherwise apply its older head over the
// newer one when it takes over. To roll back on purpose, push a new commit
// (git revert).
var ErrSuperseded = errors.New("store: a newer revision than this commit has been applied")

// checkSuperseded returns an error wrapping ErrSuperseded when ctx is
// fenced (the apply step of a replica) and commit is not the latest
// recorded revision but was recorded before, or is the parent of a
// recorded revision.
func (tx *Tx) checkSuperseded(ctx context.Context, commit string) error {
	if id, _ := ctx.Value(fenceKey{}).(string); id == "" {
		return nil
	}
	last, ok, err := tx.LatestRevision(ctx)
	if err != nil || !ok || last.Commit == commit {
		return err
	}
	hint := "(hint: to go back to it, push a new commit, e.g. git revert; a replica whose remote is behind must catch up first)"
	was, err := revisionWhere(ctx, tx, commit, `commit_sha = ?`, commit)
	if err != nil {
		return err
	}
	if was != 0 {
		return fmt.Errorf("%w: commit %s was recorded as revision #%d, and #%d (%s) after it %s",
			ErrSuperseded, short(commit), was, last.ID, short(last.Commit), hint)
	}
	child, err := revisionWhere(ctx, tx, commit, `' ' || parents || ' ' LIKE ?`, "% "+commit+" %")
	if err != nil {
		return err
	}
	if child != 0 {
		return fmt.Errorf("%w: commit %s is the parent of revision #%d, applied before %s", ErrSuperseded, short(commit), child, hint)
	}
	return nil
}

// revisionWhere returns the ID of the newest revision matching cond with
// arg; 0 when none does. commit names the lookup in an error.
func revisionWhere(ctx context.Context, tx *Tx, commit, cond, arg string) (int64, error) {
	var id int64
	err := tx.tx.QueryRowContext(ctx, `SELECT id FROM revisions WHERE `+cond+` ORDER BY id DESC LIMIT 1`, arg).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: looking up commit %s among the recorded revisions: %w", short(commit), err)
	}
	return id, nil
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
