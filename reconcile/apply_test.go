package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

func rev(sha string) Revision {
	return Revision{
		Commit: sha, Author: "Alice <alice@example.com>", Message: "change " + sha,
		CommittedAt: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		AppliedAt:   time.Date(2026, 11, 25, 10, 1, 0, 0, time.UTC),
	}
}

func TestApplyRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		t    *schema.Tailnet
	}{
		{"empty", &schema.Tailnet{}},
		{"sample", sampleTailnet()},
		{"changed", changedSample()},
		{"benchmark size", bigTailnet(50, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st, _ := openStore(t)
			if _, err := Apply(ctx, st, tt.t, rev("c1")); err != nil {
				t.Fatal(err)
			}
			got, err := LoadApplied(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.t, got, tailnetCmp); diff != "" {
				t.Errorf("LoadApplied after Apply (-applied +loaded):\n%s", diff)
			}
			// What was loaded plans to no change.
			again, err := Apply(ctx, st, got, rev("c2"))
			if err != nil {
				t.Fatal(err)
			}
			if !again.Empty() {
				var b strings.Builder
				again.WriteText(&b)
				t.Errorf("re-applying the loaded tailnet changes things:\n%s", b.String())
			}
		})
	}
}

func TestApplySequence(t *testing.T) {
	ctx := context.Background()
	st, _ := openStore(t)
	addNodes(t, st,
		testNode{name: "bob-laptop", user: "bob@example.com", authKey: "bob-laptop"},
		testNode{name: "bob-phone", user: "bob@example.com"},
		testNode{name: "bob-old", user: "bob@example.com", loggedOut: true},
		testNode{name: "router", tags: []string{"tag:router"}, authKey: "servers"},
		testNode{name: "edge", tags: []string{"tag:router", "tag:server"}, authKey: "servers"},
		testNode{name: "alice-mac", user: "alice@example.com"},
	)
	first, err := Apply(ctx, st, sampleTailnet(), rev("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if a, c, d := first.Counts(); a != len(Desired(sampleTailnet())) || c != 0 || d != 0 {
		t.Errorf("first apply counts = %d/%d/%d, want everything added", a, c, d)
	}

	// The plan Apply reports is Diff plus impact from the nodes table.
	planned, err := PlanStore(ctx, st, changedSample())
	if err != nil {
		t.Fatal(err)
	}
	second, err := Apply(ctx, st, changedSample(), rev("c2"))
	if err != nil {
		t.Fatal(err)
	}
	want := Diff(Desired(sampleTailnet()), Desired(changedSample()))
	want.AssessImpact(sampleNodes)
	if diff := cmp.Diff(want, second); diff != "" {
		t.Errorf("Apply plan (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(planned, second); diff != "" {
		t.Errorf("PlanStore and Apply disagree (-plan +apply):\n%s", diff)
	}
	got, err := LoadApplied(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(changedSample(), got, tailnetCmp); diff != "" {
		t.Errorf("LoadApplied (-want +got):\n%s", diff)
	}
}

// dumpDB renders every row of every table, to compare database states.
func dumpDB(t *testing.T, st *store.Store) string {
	t.Helper()
	var b strings.Builder
	if err := st.Dump(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestApplyFailureLeavesDBUnchanged(t *testing.T) {
	ctx := context.Background()
	st, _ := openStore(t)
	addNodes(t, st, testNode{name: "bob-phone", user: "bob@example.com"})
	if _, err := Apply(ctx, st, sampleTailnet(), rev("c1")); err != nil {
		t.Fatal(err)
	}
	// Use counts, so a failed apply is seen to leave them alone.
	setUses(t, st, map[string]int{hash('c'): 1, hash('a'): 4})

	// Count Apply's steps by failing at the last one (before committing),
	// then fail at each in turn.
	var steps []string
	applyHook = func(step string) error {
		steps = append(steps, step)
		if step == "commit" {
			return errInjected
		}
		return nil
	}
	if _, err := Apply(ctx, st, changedSample(), rev("c2")); !errors.Is(err, errInjected) {
		t.Fatalf("counting steps: Apply error = %v", err)
	}
	applyHook = nil
	n := len(steps)
	if min := len(Diff(Desired(sampleTailnet()), Desired(changedSample())).Changes) + 2; n < min {
		t.Fatalf("Apply ran %d steps, want at least one per change plus two (%d): %q", n, min, steps)
	}

	before := dumpDB(t, st)
	for i := range n {
		t.Run(fmt.Sprintf("fail at step %d", i), func(t *testing.T) {
			calls := 0
			var failedAt string
			applyHook = func(step string) error {
				calls++
				if calls-1 == i {
					failedAt = step
					return errInjected
				}
				return nil
			}
			defer func() { applyHook = nil }()
			_, err := Apply(ctx, st, changedSample(), rev("c2"))
			if !errors.Is(err, errInjected) {
				t.Fatalf("Apply error = %v, want the injected failure", err)
			}
			if !RetryLater(err) || NeedsNewCommit(err) {
				t.Errorf("injected I/O failure classed as RetryLater=%v NeedsNewCommit=%v", RetryLater(err), NeedsNewCommit(err))
			}
			if !strings.Contains(err.Error(), failedAt) {
				t.Errorf("error %q does not name the failed step %q", err, failedAt)
			}
			if diff := cmp.Diff(before, dumpDB(t, st)); diff != "" {
				t.Errorf("database changed by a failed apply (-before +after):\n%s", diff)
			}
		})
	}
	// Without the hook the same apply goes through.
	if _, err := Apply(ctx, st, changedSample(), rev("c2")); err != nil {
		t.Fatal(err)
	}
	if dumpDB(t, st) == before {
		t.Error("successful apply left the database unchanged")
	}
}

var errInjected = errors.New("injected failure")

func TestApplyConfigError(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(*schema.Tailnet)
		want   string // in the error
	}{
		{"invalid raw JSON", func(t *schema.Tailnet) { t.Policy.DERPMap = json.RawMessage(`{"Regions":`) }, "derpMap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st, _ := openStore(t)
			if _, err := Apply(ctx, st, sampleTailnet(), rev("c1")); err != nil {
				t.Fatal(err)
			}
			before := dumpDB(t, st)
			bad := sampleTailnet()
			tt.break_(bad)
			_, err := Apply(ctx, st, bad, rev("c2"))
			if !NeedsNewCommit(err) || RetryLater(err) {
				t.Errorf("Apply = %v; want an error that NeedsNewCommit", err)
			}
			if err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if diff := cmp.Diff(before, dumpDB(t, st)); diff != "" {
				t.Errorf("database changed (-before +after):\n%s", diff)
			}
		})
	}
	t.Run("no commit", func(t *testing.T) {
		st, _ := openStore(t)
		if _, err := Apply(context.Background(), st, sampleTailnet(), Revision{}); err == nil {
			t.Error("Apply without a commit succeeded")
		}
	})
}

func TestReadAppliedMissingState(t *testing.T) {
	ctx := context.Background()
	t.Run("missing dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		objs, nodes, err := ReadApplied(ctx, dir)
		if err != nil || objs != nil || nodes != nil {
			t.Fatalf("ReadApplied(missing) = %v, %v, %v; want empty", objs, nodes, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("planning created the state dir (stat: %v)", err)
		}
		p := Diff(objs, Desired(sampleTailnet()))
		if a, c, d := p.Counts(); a == 0 || c != 0 || d != 0 {
			t.Errorf("plan from missing state = %s, want only additions", p.Summary())
		}
	})
	t.Run("empty dir", func(t *testing.T) {
		dir := t.TempDir()
		objs, _, err := ReadApplied(ctx, dir)
		if err != nil || objs != nil {
			t.Fatalf("ReadApplied(empty dir) = %v, %v", objs, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("planning created files: %v", ents)
		}
	})
	t.Run("not a database", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, store.FileName), []byte("hello"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ReadApplied(ctx, dir); err == nil || !RetryLater(err) {
			t.Errorf("ReadApplied(garbage file) = %v; want a RetryLater error", err)
		}
	})
}

func TestReadAppliedExisting(t *testing.T) {
	ctx := context.Background()
	st, dir := openStore(t)
	addNodes(t, st, testNode{name: "bob-phone", user: "bob@example.com"}, testNode{name: "edge", tags: []string{"tag:router"}})
	if _, err := Apply(ctx, st, sampleTailnet(), rev("c1")); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T) {
		objs, nodes, err := ReadApplied(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(Desired(sampleTailnet()), objs); diff != "" {
			t.Errorf("applied objects (-want +got):\n%s", diff)
		}
		wantNodes := []Node{{ID: 1, Name: "bob-phone", User: "bob@example.com", Tags: []string{}}, {ID: 2, Name: "edge", Tags: []string{"tag:router"}}}
		if diff := cmp.Diff(wantNodes, nodes); diff != "" {
			t.Errorf("nodes (-want +got):\n%s", diff)
		}
	}
	t.Run("server running", check)
	before := dumpDB(t, st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("server stopped", func(t *testing.T) {
		check(t)
		ents, _ := os.ReadDir(dir)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if diff := cmp.Diff([]string{store.FileName}, names); diff != "" {
			t.Errorf("reading a stopped server's state left files (-want +got):\n%s", diff)
		}
	})
	st2, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if diff := cmp.Diff(before, dumpDB(t, st2)); diff != "" {
		t.Errorf("reading changed the database (-before +after):\n%s", diff)
	}
}

func TestRevisions(t *testing.T) {
	ctx := context.Background()
	st, _ := openStore(t)
	if _, ok, err := st.LatestRevision(ctx); ok || err != nil {
		t.Fatalf("LatestRevision on a new store = %v, %v", ok, err)
	}
	for i, tn := range []*schema.Tailnet{sampleTailnet(), changedSample(), changedSample()} {
		if _, err := Apply(ctx, st, tn, rev(fmt.Sprintf("c%d", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.Revisions(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	r := rev("")
	want := []Revision{
		{ID: 3, Commit: "c3", Author: r.Author, Message: "change c3", CommittedAt: r.CommittedAt, AppliedAt: r.AppliedAt, Summary: "No changes."},
		{ID: 2, Commit: "c2", Author: r.Author, Message: "change c2", CommittedAt: r.CommittedAt, AppliedAt: r.AppliedAt, Summary: "Plan: 1 to add, 10 to change, 6 to destroy."},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Revisions (-want +got):\n%s", diff)
	}
	all, err := st.Revisions(ctx, 0)
	if err != nil || len(all) != 3 {
		t.Errorf("Revisions(all) = %d revisions, %v; want 3", len(all), err)
	}
	last, ok, err := st.LatestRevision(ctx)
	if err != nil || !ok || last.Commit != "c3" {
		t.Errorf("LatestRevision = %+v, %v, %v", last, ok, err)
	}

	// Each revision keeps the JSON plan it applied.
	var want2 bytes.Buffer
	p2 := Diff(Desired(sampleTailnet()), Desired(changedSample()))
	p2.AssessImpact(nil)
	if err := p2.WriteJSON(&want2); err != nil {
		t.Fatal(err)
	}
	plan2, err := st.RevisionPlan(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want2.String(), string(plan2)); diff != "" {
		t.Errorf("RevisionPlan(2) (-want +got):\n%s", diff)
	}
	if _, err := st.RevisionPlan(ctx, 99); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevisionPlan(missing) error = %v, want store.ErrNotFound", err)
	}
}

func TestErrorClasses(t *testing.T) {
	tests := []struct {
		name                  string
		err                   error
		needsCommit, retryLtr bool
	}{
		{"nil", nil, false, false},
		{"config", &ConfigError{Err: errors.New("bad")}, true, false},
		{"wrapped config", fmt.Errorf("sync: %w", &ConfigError{Err: errors.New("bad")}), true, false},
		{"diagnostics", schema.Diagnostics{{Message: "unknown key"}}, true, false},
		{"warnings only", schema.Diagnostics{{Severity: schema.SevWarning, Message: "meh"}}, false, true},
		{"io", errors.New("disk I/O error"), false, true},
		{"canceled", fmt.Errorf("apply: %w", context.Canceled), false, false},
		{"deadline", context.DeadlineExceeded, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NeedsNewCommit(tt.err); got != tt.needsCommit {
				t.Errorf("NeedsNewCommit = %v, want %v", got, tt.needsCommit)
			}
			if got := RetryLater(tt.err); got != tt.retryLtr {
				t.Errorf("RetryLater = %v, want %v", got, tt.retryLtr)
			}
		})
	}
}

// TestApplyConcurrent runs two applies at once on separate connections to
// one database file: each must see a consistent state, and the end state
// must be exactly one of the two tailnets with both revisions recorded.
func TestApplyConcurrent(t *testing.T) {
	ctx := context.Background()
	st, dir := openStore(t)
	if _, err := Apply(ctx, st, sampleTailnet(), rev("c0")); err != nil {
		t.Fatal(err)
	}
	st2, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()

	big := bigTailnet(200, 1)
	errs := make(chan error, 2)
	go func() { _, err := Apply(ctx, st, changedSample(), rev("c1")); errs <- err }()
	go func() { _, err := Apply(ctx, st2, big, rev("c2")); errs <- err }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	last, ok, err := st.LatestRevision(ctx)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	want := map[string]*schema.Tailnet{"c1": changedSample(), "c2": big}[last.Commit]
	got, err := LoadApplied(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, tailnetCmp); diff != "" {
		t.Errorf("state after concurrent applies is not the last revision %s (-want +got):\n%s", last.Commit, diff)
	}
	if revs, _ := st.Revisions(ctx, 0); len(revs) != 3 {
		t.Errorf("%d revisions recorded, want 3", len(revs))
	}
}

// setUses counts uses of auth key secrets that have none yet, as
// registrations would.
func setUses(t *testing.T, st *store.Store, uses map[string]int) {
	t.Helper()
	ctx := context.Background()
	err := st.Update(ctx, func(tx *store.Tx) error {
		for h, n := range uses {
			for range n {
				if err := tx.CountAuthKeyUse(ctx, h, 0); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func getUses(t *testing.T, st *store.Store) map[string]int {
	t.Helper()
	out, err := st.AllAuthKeyUses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestApplyKeepsAuthKeyUses: use counts belong to secrets, so no config
// change resets them: not deleting a key, not rotating its secret, not
// declaring it again (a revert) or under another name.
func TestApplyKeepsAuthKeyUses(t *testing.T) {
	ctx := context.Background()
	st, _ := openStore(t)
	if _, err := Apply(ctx, st, sampleTailnet(), rev("c1")); err != nil {
		t.Fatal(err)
	}
	uses := map[string]int{hash('a'): 3, hash('b'): 5, hash('c'): 1}
	setUses(t, st, uses)
	next := sampleTailnet()
	ci := next.AuthKeys["ci"]
	ci.SecretHash = hash('f') // rotated
	next.AuthKeys["ci"] = ci
	srv := next.AuthKeys["servers"]
	srv.Uses = 50 // limit raised, same secret
	next.AuthKeys["servers"] = srv
	laptop := next.AuthKeys["bob-laptop"]
	delete(next.AuthKeys, "bob-laptop")
	if _, err := Apply(ctx, st, next, rev("c2")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(uses, getUses(t, st)); diff != "" {
		t.Errorf("auth key uses after rotating, deleting and changing keys (-want +got):\n%s", diff)
	}
	// Back to c1 (a revert), then bob-laptop's secret under a new name.
	if _, err := Apply(ctx, st, sampleTailnet(), rev("c3")); err != nil {
		t.Fatal(err)
	}
	renamed := sampleTailnet()
	delete(renamed.AuthKeys, "bob-laptop")
	laptop.Name = "bobs-laptop"
	renamed.AuthKeys[laptop.Name] = laptop
	if _, err := Apply(ctx, st, renamed, rev("c4")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(uses, getUses(t, st)); diff != "" {
		t.Errorf("auth key uses after a revert and a rename (-want +got):\n%s", diff)
	}
}

// TestApplySameCommitTwice: a restarted server re-applying the commit it
// last applied records no second revision; a new commit with the same
// content is recorded.
func TestApplySameCommitTwice(t *testing.T) {
	ctx := context.Background()
	st, _ := openStore(t)
	for _, sha := range []string{"c1", "c1", "c2", "c2"} {
		p, err := Apply(ctx, st, sampleTailnet(), rev(sha))
		if err != nil {
			t.Fatal(err)
		}
		if sha == "c2" && !p.Empty() {
			t.Errorf("apply %s: %s, want no changes", sha, p.Summary())
		}
	}
	revs, err := st.Revisions(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range revs {
		got = append(got, r.Commit+": "+r.Summary)
	}
	want := []string{"c2: No changes.", "c1: Plan: 31 to add, 0 to change, 0 to destroy."}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("revisions (-want +got):\n%s", diff)
	}
}
