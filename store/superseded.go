package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrSuperseded is AddRevision's error, under WithApplierFence, for a
// commit that was recorded before and has since been superseded by
// another: replicas never go back to a revision they moved on from. A
// replica whose Git cache (or remote) is behind the one that applied last
// would otherwise apply its older head over the newer one when it takes
// over. To roll back on purpose, push a new commit (git revert).
var ErrSuperseded = errors.New("store: this commit was applied before and a newer revision has been applied since")

// checkSuperseded returns an error wrapping ErrSuperseded when ctx is
// fenced (the apply step of a replica) and commit was recorded before but
// is not the latest recorded revision.
func (tx *Tx) checkSuperseded(ctx context.Context, commit string) error {
	if id, _ := ctx.Value(fenceKey{}).(string); id == "" {
		return nil
	}
	var was int64
	err := tx.tx.QueryRowContext(ctx, `SELECT id FROM revisions WHERE commit_sha = ? ORDER BY id DESC LIMIT 1`, commit).Scan(&was)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: looking up commit %s among the recorded revisions: %w", commit, err)
	}
	last, ok, err := tx.LatestRevision(ctx)
	if err != nil || !ok || last.ID == was {
		return err
	}
	return fmt.Errorf("%w: commit %s was recorded as revision #%d, and #%d (%s) after it (hint: to go back to it, push a new commit, e.g. git revert; a replica whose remote is behind must catch up first)",
		ErrSuperseded, short(commit), was, last.ID, short(last.Commit))
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
