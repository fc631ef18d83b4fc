package pipeline

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tailplane/tailplane/store"
)

// recordRefused keeps a, a failed attempt, in the store's list of refused
// revisions; a failure to do so is logged, since the attempt itself is
// already in the status and the log.
func (l *Pipeline) recordRefused(ctx context.Context, a *Attempt) {
	b, err := json.Marshal(a)
	if err == nil {
		err = l.cfg.Store.AddRefusedRevision(ctx, store.RefusedRevision{Commit: a.Revision.Commit, Finished: a.Finished, Value: b})
	}
	if err != nil {
		l.cfg.Logf("reconcile: revision %s: not recorded among the refused revisions: %v", shortCommit(a.Revision.Commit), err)
	}
}

// Refused returns up to limit revisions the pipeline tried and did not
// apply, newest first, kept across restarts (store.KeptRefused of them).
// Retries that failed the same way as the attempt before are not listed
// again. A limit of 0 or less means all that are kept.
func (l *Pipeline) Refused(ctx context.Context, limit int) ([]Attempt, error) {
	rows, err := l.cfg.Store.RefusedRevisions(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Attempt, 0, len(rows))
	for _, r := range rows {
		var a Attempt
		if err := json.Unmarshal(r.Value, &a); err != nil {
			return nil, fmt.Errorf("pipeline: refused revision %d (%s) does not decode: %w", r.ID, shortCommit(r.Commit), err)
		}
		out = append(out, a)
	}
	return out, nil
}
