package reconcile

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

// Revision is one applied config revision, as recorded in the revisions
// table (which also keeps the applied plan; see RevisionPlan).
type Revision struct {
	ID          int64     `json:"id,omitempty"`         // assigned by Apply
	Commit      string    `json:"commit"`               // Git commit SHA, or a content hash for a local directory; required
	Author      string    `json:"author,omitempty"`     // "Name <email>"; may be empty
	Message     string    `json:"message,omitempty"`    // commit message; may be empty
	CommittedAt time.Time `json:"committedAt,omitzero"` // zero if unknown
	AppliedAt   time.Time `json:"appliedAt,omitzero"`   // zero means Apply uses the current time
	Summary     string    `json:"summary,omitempty"`    // the plan's Summary(); set by Apply
}

// querier is what reading needs from a *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// applyHook, when set (by tests), runs before each statement of Apply's
// transaction with a description of the step; an error aborts the apply.
var (
	applyHookMu sync.Mutex // guards applyHook against SetApplyHook
	applyHook   func(step string) error
)

// SetApplyHook installs f to run before each statement of Apply's
// transaction and before its commit, with a description of the step ("add
// user x", "record revision", "commit"); an error from f aborts the apply
// as a crash would. It is for crash-injection tests of other packages; nil
// removes the hook.
func SetApplyHook(f func(step string) error) {
	applyHookMu.Lock()
	applyHook = f
	applyHookMu.Unlock()
}

func currentApplyHook() func(string) error {
	applyHookMu.Lock()
	defer applyHookMu.Unlock()
	return applyHook
}

// ReadApplied reads the applied objects and the registered nodes from the
// database in stateDir without creating or changing anything. A state
// directory (or database) that does not exist yet reads as empty, so a
// first plan shows everything as added.
func ReadApplied(ctx context.Context, stateDir string) ([]Object, []Node, error) {
	st, err := store.OpenReadOnly(ctx, stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reconcile: reading applied state: %w", err)
	}
	defer st.Close()
	return ReadStore(ctx, st)
}

// ReadStore is ReadApplied for an open store.
func ReadStore(ctx context.Context, st *store.Store) ([]Object, []Node, error) {
	objs, err := readObjects(ctx, st.DB)
	if err != nil {
		return nil, nil, err
	}
	nodes, err := readNodes(ctx, st.DB)
	if err != nil {
		return nil, nil, err
	}
	return objs, nodes, nil
}

// PlanStore computes what applying t to the store would change, with its impact
// on registered nodes, without changing anything.
func PlanStore(ctx context.Context, st *store.Store, t *schema.Tailnet) (*Plan, error) {
	want, err := desired(t)
	if err != nil {
		return nil, err
	}
	have, nodes, err := ReadStore(ctx, st)
	if err != nil {
		return nil, err
	}
	p := Diff(have, want)
	p.AssessImpact(nodes)
	return p, nil
}

// Apply makes t the applied state and records rev, in one SQLite
// transaction: if any step fails, the database is left exactly as it was.
// It returns the plan it applied (with impact). A revision is recorded even
// when the plan is empty, so the history shows every commit served, except
// when rev is the commit last recorded: re-applying it records nothing.
// A tailnet that fails Check is refused before the database is touched.
// Auth key use counts belong to the secret (store.RegisterNode) and no
// change resets them: a deleted key declared again with the same
// secretHash keeps its uses.
// Errors are classed by NeedsNewCommit and RetryLater.
func Apply(ctx context.Context, st *store.Store, t *schema.Tailnet, rev Revision) (*Plan, error) {
	if err := Check(t); err != nil {
		return nil, err
	}
	want, err := desired(t)
	if err != nil {
		return nil, err
	}
	if rev.Commit == "" {
		return nil, fmt.Errorf("reconcile: apply: revision has no commit (hint: pass the Git SHA or a content hash)")
	}
	tx, err := st.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("reconcile: apply %s: starting transaction on %s: %w", rev.Commit, st.Path, err)
	}
	defer tx.Rollback() // no-op after Commit
	hook := currentApplyHook()

	have, err := readObjects(ctx, tx)
	if err != nil {
		return nil, err
	}
	nodes, err := readNodes(ctx, tx)
	if err != nil {
		return nil, err
	}
	plan := Diff(have, want)
	plan.AssessImpact(nodes)

	step := func(desc, query string, args ...any) error {
		if hook != nil {
			if err := hook(desc); err != nil {
				return fmt.Errorf("reconcile: apply %s: %s: %w", rev.Commit, desc, err)
			}
		}
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("reconcile: apply %s: %s: %w", rev.Commit, desc, err)
		}
		return nil
	}
	for _, c := range plan.Changes {
		desc := string(c.Action) + " " + string(c.Kind) + " " + c.Name
		if c.Action == ActionDelete {
			err = step(desc, `DELETE FROM config_objects WHERE kind = ? AND name = ?`, string(c.Kind), c.Name)
		} else {
			err = step(desc, `INSERT INTO config_objects (kind, name, value) VALUES (?, ?, ?)
				ON CONFLICT (kind, name) DO UPDATE SET value = excluded.value`, string(c.Kind), c.Name, string(c.After))
		}
		if err != nil {
			return nil, err
		}
	}

	if plan.Empty() {
		// Re-applying the commit last recorded (a restarted server) changes
		// nothing and records nothing.
		var last string
		err := tx.QueryRowContext(ctx, `SELECT commit_sha FROM revisions ORDER BY id DESC LIMIT 1`).Scan(&last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("reconcile: apply %s: reading the last revision: %w", rev.Commit, err)
		}
		if last == rev.Commit {
			return plan, nil
		}
	}

	applied := rev.AppliedAt
	if applied.IsZero() {
		applied = time.Now()
	}
	var committed int64
	if !rev.CommittedAt.IsZero() {
		committed = rev.CommittedAt.Unix()
	}
	var planJSON bytes.Buffer
	if err := plan.WriteJSON(&planJSON); err != nil {
		return nil, err
	}
	if err := step("record revision", `INSERT INTO revisions (commit_sha, author, message, committed_at, applied_at, summary, plan)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, rev.Commit, rev.Author, rev.Message, committed, applied.Unix(), plan.Summary(), planJSON.String()); err != nil {
		return nil, err
	}
	if hook != nil {
		if err := hook("commit"); err != nil {
			return nil, fmt.Errorf("reconcile: apply %s: commit: %w", rev.Commit, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("reconcile: apply %s: committing to %s: %w", rev.Commit, st.Path, err)
	}
	return plan, nil
}

// readObjects reads every applied object, in plan order.
func readObjects(ctx context.Context, q querier) ([]Object, error) {
	rows, err := q.QueryContext(ctx, `SELECT kind, name, value FROM config_objects`)
	if err != nil {
		return nil, fmt.Errorf("reconcile: reading applied objects: %w", err)
	}
	defer rows.Close()
	var objs []Object
	for rows.Next() {
		var o Object
		var kind, value string
		if err := rows.Scan(&kind, &o.Name, &value); err != nil {
			return nil, fmt.Errorf("reconcile: reading applied objects: %w", err)
		}
		o.Kind, o.Value = Kind(kind), json.RawMessage(value)
		objs = append(objs, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reconcile: reading applied objects: %w", err)
	}
	sortObjects(objs)
	return objs, nil
}

// readNodes reads the registered nodes' facts that plans report on.
func readNodes(ctx context.Context, q querier) ([]Node, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, stable_id, given_name, hostname, user_login, tags, auth_key, logged_out
		FROM nodes ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("reconcile: reading registered nodes: %w", err)
	}
	defer rows.Close()
	var nodes []Node
	for rows.Next() {
		var n Node
		var stable, given, host, tags string
		if err := rows.Scan(&n.ID, &stable, &given, &host, &n.User, &tags, &n.AuthKey, &n.LoggedOut); err != nil {
			return nil, fmt.Errorf("reconcile: reading registered nodes: %w", err)
		}
		n.Name = firstNonEmpty(given, host, stable)
		if err := json.Unmarshal([]byte(tags), &n.Tags); err != nil {
			return nil, fmt.Errorf("reconcile: node %s: tags %q are not a JSON list: %w", n.Name, tags, err)
		}
		nodes = append(nodes, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reconcile: reading registered nodes: %w", err)
	}
	return nodes, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// Revisions returns up to limit applied revisions, newest first. A limit
// of 0 or less means all.
func Revisions(ctx context.Context, st *store.Store, limit int) ([]Revision, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := st.DB.QueryContext(ctx, `SELECT id, commit_sha, author, message, committed_at, applied_at, summary
		FROM revisions ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("reconcile: reading revisions: %w", err)
	}
	defer rows.Close()
	var revs []Revision
	for rows.Next() {
		var r Revision
		var committed, applied int64
		if err := rows.Scan(&r.ID, &r.Commit, &r.Author, &r.Message, &committed, &applied, &r.Summary); err != nil {
			return nil, fmt.Errorf("reconcile: reading revisions: %w", err)
		}
		if committed != 0 {
			r.CommittedAt = time.Unix(committed, 0).UTC()
		}
		r.AppliedAt = time.Unix(applied, 0).UTC()
		revs = append(revs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reconcile: reading revisions: %w", err)
	}
	return revs, nil
}

// RevisionPlan returns the JSON plan (docs/plan.md) that revision id
// applied. The error wraps sql.ErrNoRows when there is no such revision.
func RevisionPlan(ctx context.Context, st *store.Store, id int64) (json.RawMessage, error) {
	var plan string
	err := st.DB.QueryRowContext(ctx, `SELECT plan FROM revisions WHERE id = ?`, id).Scan(&plan)
	if err != nil {
		return nil, fmt.Errorf("reconcile: reading the plan of revision %d: %w", id, err)
	}
	return json.RawMessage(plan), nil
}

// LastRevision returns the most recently applied revision; ok is false
// when nothing was applied yet.
func LastRevision(ctx context.Context, st *store.Store) (rev Revision, ok bool, err error) {
	revs, err := Revisions(ctx, st, 1)
	if err != nil || len(revs) == 0 {
		return Revision{}, false, err
	}
	return revs[0], true, nil
}
