package store

import (
	"context"
	"fmt"
	"math"
	"time"
)

// AuditEntry is one row of the audit log: who did what, when, and how it
// ended. Entries are only ever added. They must never hold a secret (no
// key, token or secret hash): the log is meant to be read by people.
type AuditEntry struct {
	ID     int64     // assigned by AddAudit
	At     time.Time // zero means AddAudit records the current time; kept to the second
	Who    string    // the actor ("alice@example.com", "apikey:ci", "node:web1", "system"); empty means unknown
	What   string    // the action and its target ("delete node web1"); required
	Result string    // "ok", or why it failed; empty means not recorded
}

// AddAudit adds e to the audit log and returns its ID.
func (s *Store) AddAudit(ctx context.Context, e AuditEntry) (int64, error) {
	return addAudit(ctx, s.db, e)
}

// AddAudit adds e to the audit log as part of this transaction (so an
// action and its entry are committed, or rolled back, together) and
// returns its ID.
func (tx *Tx) AddAudit(ctx context.Context, e AuditEntry) (int64, error) {
	return addAudit(ctx, tx.tx, e)
}

func addAudit(ctx context.Context, q querier, e AuditEntry) (int64, error) {
	if e.What == "" {
		return 0, fmt.Errorf("store: audit entry by %q says nothing about what was done (hint: set AuditEntry.What)", e.Who)
	}
	at := e.At
	if at.IsZero() {
		at = time.Now()
	}
	var id int64
	err := q.QueryRowContext(ctx, `INSERT INTO audit (at, who, what, result) VALUES (?, ?, ?, ?) RETURNING id`,
		at.Unix(), e.Who, e.What, e.Result).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: adding audit entry %q: %w", e.What, err)
	}
	return id, nil
}

// AuditEntries returns up to limit audit entries, newest first. A limit of
// 0 or less means all.
func (s *Store) AuditEntries(ctx context.Context, limit int) ([]AuditEntry, error) {
	if limit <= 0 {
		limit = math.MaxInt // no limit, in a way every dialect understands
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, who, what, result FROM audit ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: reading the audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Who, &e.What, &e.Result); err != nil {
			return nil, fmt.Errorf("store: reading the audit log: %w", err)
		}
		e.At = time.Unix(at, 0).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading the audit log: %w", err)
	}
	return out, nil
}
