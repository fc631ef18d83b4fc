package control

import (
	"context"
	"strings"
	"testing"

	"github.com/tailplane/tailplane/reconcile"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

// TestSpentKeyStaysSpent: a one-shot key's use belongs to its secret. After
// the key leaves the config and comes back with the same secretHash (a git
// revert, or an older commit), or comes back under another name, it
// registers nothing; each revision is applied to the store and installed in
// the server as the sync loop does.
func TestSpentKeyStaysSpent(t *testing.T) {
	ctx := context.Background()
	tn := testTailnet()
	ts := startServer(t, tn, "")
	apply := func(commit string, tn *schema.Tailnet) {
		t.Helper()
		if _, err := reconcile.Apply(ctx, ts.Store, tn, reconcile.Revision{Commit: commit}); err != nil {
			t.Fatalf("applying %s: %v", commit, err)
		}
		if err := ts.SetConfig(ctx, tn); err != nil {
			t.Fatalf("installing %s: %v", commit, err)
		}
	}
	apply("c1", tn)
	first := newRawNode(t, ts)
	if r := first.register(first.registerReq(oneShotKey)); r.Error != "" {
		t.Fatalf("first use of the one-shot key: %s", r.Error)
	}

	without := testTailnet()
	delete(without.AuthKeys, "oneshot")
	renamed := testTailnet()
	k := renamed.AuthKeys["oneshot"]
	delete(renamed.AuthKeys, "oneshot")
	k.Name = "bobs-key"
	renamed.AuthKeys[k.Name] = k

	steps := []struct {
		name   string
		commit string
		tn     *schema.Tailnet
		want   string
	}{
		{"key removed", "c2", without, "not declared"},
		{"revert: key declared again", "c3", testTailnet(), `auth key "oneshot" is one-shot and was already used`},
		{"renamed", "c4", renamed, `auth key "bobs-key" is one-shot and was already used`},
	}
	for _, s := range steps {
		apply(s.commit, s.tn)
		n := newRawNode(t, ts)
		r := n.register(n.registerReq(oneShotKey))
		if !strings.Contains(r.Error, s.want) {
			t.Errorf("%s (%s): registering with the spent key answered %q, want an error containing %q", s.name, s.commit, r.Error, s.want)
		}
	}
}

// TestNothingAppliedRefusesRegistration: a server started on a state
// directory where nothing was ever applied serves the empty tailnet
// reconcile.LoadApplied reads from it. It declares no auth key, so every
// registration is refused (what serve logs when a first revision fails).
func TestNothingAppliedRefusesRegistration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := reconcile.LoadApplied(ctx, st)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, empty, dir)
	for _, tc := range []struct{ authKey, want string }{
		{oneShotKey, "not declared in this tailnet's config"},
		{"", "auth keys only"},
	} {
		n := newRawNode(t, ts)
		if r := n.register(n.registerReq(tc.authKey)); !strings.Contains(r.Error, tc.want) {
			t.Errorf("registering with key %q: answer %q, want an error containing %q", tc.authKey, r.Error, tc.want)
		}
	}
}
