package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// KeptRefused is how many refused revisions the store keeps; adding one
// more forgets the oldest.
const KeptRefused = 200

// RefusedRevision is one revision the server tried and did not apply.
type RefusedRevision struct {
	ID       int64           // assigned by AddRefusedRevision
	Commit   string          // the revision's commit (or content hash); required
	Finished time.Time       // when the attempt ended; kept to the second
	Value    json.RawMessage // the pipeline's record of the attempt, kept as given
}

// AddRefusedRevision records r, forgetting all but the newest KeptRefused.
func (s *Store) AddRefusedRevision(ctx context.Context, r RefusedRevision) error {
	if r.Commit == "" || len(r.Value) == 0 {
		return fmt.Errorf("store: a refused revision needs its commit and value (hint: set RefusedRevision.Commit and .Value)")
	}
	return s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.tx.ExecContext(ctx, `INSERT INTO refused_revisions (commit_id, finished_at, value) VALUES (?, ?, ?)`,
			r.Commit, r.Finished.Unix(), string(r.Value)); err != nil {
			return fmt.Errorf("store: recording refused revision %s: %w", r.Commit, err)
		}
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM refused_revisions WHERE id NOT IN
			(SELECT id FROM refused_revisions ORDER BY id DESC LIMIT ?)`, KeptRefused); err != nil {
			return fmt.Errorf("store: forgetting old refused revisions: %w", err)
		}
		return nil
	})
}

// RefusedRevisions returns up to limit refused revisions, newest first. A
// limit of 0 or less means all that are kept.
func (s *Store) RefusedRevisions(ctx context.Context, limit int) ([]RefusedRevision, error) {
	if limit <= 0 {
		limit = math.MaxInt
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, commit_id, finished_at, value FROM refused_revisions ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: reading refused revisions: %w", err)
	}
	defer rows.Close()
	var out []RefusedRevision
	for rows.Next() {
		var r RefusedRevision
		var at int64
		var v string
		if err := rows.Scan(&r.ID, &r.Commit, &at, &v); err != nil {
			return nil, fmt.Errorf("store: reading refused revisions: %w", err)
		}
		r.Finished, r.Value = time.Unix(at, 0).UTC(), json.RawMessage(v)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading refused revisions: %w", err)
	}
	return out, nil
}
