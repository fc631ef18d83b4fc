package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

// Revision is one applied config revision, as Apply records it.
type Revision = store.Revision

// applyHook, when set (by tests), runs before each write of Apply's
// transaction with a description of the step; an error aborts the apply.
var (
	applyHookMu sync.Mutex // guards applyHook against SetApplyHook
	applyHook   func(step string) error
)

// SetApplyHook installs f to run before each write of Apply's
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
	rows, err := st.ConfigObjects(ctx)
	if err != nil {
		return nil, nil, err
	}
	stored, err := st.Nodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	return objectsFromStore(rows), planNodes(stored), nil
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

// Apply makes t the applied state and records rev, in one store
// transaction: if any step fails, the database is left exactly as it was.
// It returns the plan it applied (with impact). A revision is recorded even
// when the plan is empty, so the history shows every commit served, except
// when rev is the commit last recorded: re-applying it records nothing.
// Apply neither compiles nor checks t: it records what the coordination
// server prepared (control.Server.Prepare), so t is a prepared config's
// Tailnet. Auth key use counts belong to the secret (store.RegisterNode) and no
// change resets them: a deleted key declared again with the same
// secretHash keeps its uses.
// Errors are classed by NeedsNewCommit and RetryLater.
func Apply(ctx context.Context, st *store.Store, t *schema.Tailnet, rev Revision) (*Plan, error) {
	want, err := desired(t)
	if err != nil {
		return nil, err
	}
	if rev.Commit == "" {
		return nil, fmt.Errorf("reconcile: apply: revision has no commit (hint: pass the Git SHA or a content hash)")
	}
	hook := currentApplyHook()
	var plan *Plan
	err = st.Update(ctx, func(tx *store.Tx) error {
		var err error
		plan, err = applyTx(ctx, tx, want, rev, hook)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: apply %s: %w", rev.Commit, err)
	}
	return plan, nil
}

// applyTx is Apply's transaction: it plans want against what tx holds,
// writes the changes and records rev. hook, when not nil, runs before each
// write and before the commit.
func applyTx(ctx context.Context, tx *store.Tx, want []Object, rev Revision, hook func(string) error) (*Plan, error) {
	rows, err := tx.ConfigObjects(ctx)
	if err != nil {
		return nil, err
	}
	stored, err := tx.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	plan := Diff(objectsFromStore(rows), want)
	plan.AssessImpact(planNodes(stored))

	step := func(desc string) error {
		if hook == nil {
			return nil
		}
		if err := hook(desc); err != nil {
			return fmt.Errorf("%s: %w", desc, err)
		}
		return nil
	}
	for _, c := range plan.Changes {
		if err := step(string(c.Action) + " " + string(c.Kind) + " " + c.Name); err != nil {
			return nil, err
		}
		if c.Action == ActionDelete {
			err = tx.DeleteConfigObject(ctx, string(c.Kind), c.Name)
		} else {
			err = tx.PutConfigObject(ctx, store.ConfigObject{Kind: string(c.Kind), Name: c.Name, Value: c.After})
		}
		if err != nil {
			return nil, err
		}
	}

	if plan.Empty() {
		// Re-applying the commit last recorded (a restarted server) changes
		// nothing and records nothing.
		last, ok, err := tx.LatestRevision(ctx)
		if err != nil {
			return nil, err
		}
		if ok && last.Commit == rev.Commit {
			return plan, nil
		}
	}

	var planJSON bytes.Buffer
	if err := plan.WriteJSON(&planJSON); err != nil {
		return nil, err
	}
	rev.Summary = plan.Summary()
	if err := step("record revision"); err != nil {
		return nil, err
	}
	if _, err := tx.AddRevision(ctx, rev, planJSON.Bytes()); err != nil {
		return nil, err
	}
	if err := step("commit"); err != nil {
		return nil, err
	}
	return plan, nil
}

// objectsFromStore turns stored rows into Objects, in plan order.
func objectsFromStore(rows []store.ConfigObject) []Object {
	if len(rows) == 0 {
		return nil
	}
	objs := make([]Object, 0, len(rows))
	for _, r := range rows {
		objs = append(objs, Object{Kind: Kind(r.Kind), Name: r.Name, Value: r.Value})
	}
	sortObjects(objs)
	return objs
}

// planNodes are the registered nodes' facts that plans report on.
func planNodes(stored []*store.Node) []Node {
	var nodes []Node
	for _, n := range stored {
		nodes = append(nodes, Node{
			ID:        n.ID,
			Name:      firstNonEmpty(n.GivenName, n.Hostname, n.StableID),
			User:      n.UserLogin,
			Tags:      n.Tags,
			AuthKey:   n.AuthKey,
			LoggedOut: n.LoggedOut,
		})
	}
	return nodes
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
