package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Revision is one applied config revision, as recorded in the revisions
// table (which also keeps the plan it applied; see RevisionPlan).
type Revision struct {
	ID          int64     `json:"id,omitempty"`         // assigned when recorded
	Commit      string    `json:"commit"`               // Git commit SHA, or a content hash for a local directory; required
	Author      string    `json:"author,omitempty"`     // "Name <email>"; may be empty
	Message     string    `json:"message,omitempty"`    // commit message; may be empty
	CommittedAt time.Time `json:"committedAt,omitzero"` // zero if unknown
	AppliedAt   time.Time `json:"appliedAt,omitzero"`   // zero means AddRevision records the current time
	Summary     string    `json:"summary,omitempty"`    // the applied plan's summary ("Plan: 1 to add, ...")
	// Parents are the commit's parents (Git); a replica never applies one
	// of them after this revision (see ErrSuperseded).
	Parents []string `json:"-"`
}

// AddRevision records r with the plan it applied (a JSON document, kept as
// given) and returns the ID it was assigned. Times are kept to the second.
// Under WithApplierFence it refuses a commit recorded before and since
// superseded (ErrSuperseded).
func (tx *Tx) AddRevision(ctx context.Context, r Revision, plan json.RawMessage) (int64, error) {
	applied := r.AppliedAt
	if applied.IsZero() {
		applied = time.Now()
	}
	if err := tx.checkSuperseded(ctx, r.Commit); err != nil {
		return 0, err
	}
	var id int64
	err := tx.tx.QueryRowContext(ctx, `INSERT INTO revisions (commit_sha, author, message, committed_at, applied_at, summary, plan, parents)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, r.Commit, r.Author, r.Message, toUnix(r.CommittedAt), applied.Unix(), r.Summary, string(plan),
		strings.Join(r.Parents, " ")).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: recording revision %s: %w", r.Commit, err)
	}
	return id, tx.revisionRecorded(ctx, id)
}

// LatestRevision returns the most recently recorded revision as this
// transaction sees it; ok is false when none was recorded yet.
func (tx *Tx) LatestRevision(ctx context.Context) (r Revision, ok bool, err error) {
	return latestRevision(ctx, tx.tx)
}

// LatestRevision returns the most recently recorded revision; ok is false
// when none was recorded yet.
func (s *Store) LatestRevision(ctx context.Context) (r Revision, ok bool, err error) {
	return latestRevision(ctx, s.db)
}

func latestRevision(ctx context.Context, q querier) (Revision, bool, error) {
	revs, err := revisions(ctx, q, 1)
	if err != nil || len(revs) == 0 {
		return Revision{}, false, err
	}
	return revs[0], true, nil
}

// Revisions returns up to limit recorded revisions, newest first. A limit
// of 0 or less means all.
func (s *Store) Revisions(ctx context.Context, limit int) ([]Revision, error) {
	return revisions(ctx, s.db, limit)
}

func revisions(ctx context.Context, q querier, limit int) ([]Revision, error) {
	if limit <= 0 {
		limit = math.MaxInt // no limit, in a way every dialect understands
	}
	rows, err := q.QueryContext(ctx, `SELECT id, commit_sha, author, message, committed_at, applied_at, summary, parents
		FROM revisions ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: reading revisions: %w", err)
	}
	defer rows.Close()
	var revs []Revision
	for rows.Next() {
		var r Revision
		var committed, applied int64
		var parents string
		if err := rows.Scan(&r.ID, &r.Commit, &r.Author, &r.Message, &committed, &applied, &r.Summary, &parents); err != nil {
			return nil, fmt.Errorf("store: reading revisions: %w", err)
		}
		r.CommittedAt = fromUnix(committed)
		r.AppliedAt = time.Unix(applied, 0).UTC()
		if parents != "" {
			r.Parents = strings.Fields(parents)
		}
		revs = append(revs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading revisions: %w", err)
	}
	return revs, nil
}

// RevisionPlan returns the plan recorded with revision id, as it was given
// to AddRevision. The error wraps ErrNotFound when there is no such
// revision.
func (s *Store) RevisionPlan(ctx context.Context, id int64) (json.RawMessage, error) {
	var plan string
	err := s.db.QueryRowContext(ctx, `SELECT plan FROM revisions WHERE id = ?`, id).Scan(&plan)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: no revision %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading the plan of revision %d: %w", id, err)
	}
	return json.RawMessage(plan), nil
}
