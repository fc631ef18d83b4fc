package pipeline

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/reconcile"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/types/key"
)

// follower is a Replica that never applies.
type follower struct{ changed chan struct{} }

func (f follower) Applier() bool                             { return false }
func (f follower) Fence(ctx context.Context) context.Context { return ctx }
func (f follower) Changed() <-chan struct{}                  { return f.changed }
func (f follower) SyncApplier()                              {}

// TestServedAtStart: a replica's server is made from the applied state
// read at start, empty here; another replica records a revision before
// the pipeline starts. Told what was served (nothing), the follower's
// pipeline installs the recorded revision instead of taking it for the
// one served.
func TestServedAtStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	served, _, err := st.LatestRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := reconcile.LoadApplied(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := control.New(ctx, control.Config{Store: st, NoiseKey: key.NewMachine(), Tailnet: applied, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()

	// The other replica applies examples/basic meanwhile.
	tn, diags := schema.Load(ctx, os.DirFS("../examples/basic"), ".")
	if diags.HasErrors() {
		t.Fatal(diags.Errors())
	}
	if _, err := reconcile.Apply(ctx, st, tn, Revision{Commit: "c1"}); err != nil {
		t.Fatal(err)
	}

	f := follower{changed: make(chan struct{}, 1)}
	pl, err := New(ctx, Config{Store: st, Source: newChanSource(), Server: ctrl, Replica: f, Served: &served, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	f.changed <- struct{}{} // the replica's first catch-up
	st2, err := pl.Wait(ctx, func(s Status) bool { return s.Applied != nil && s.Applied.Commit == "c1" })
	if err != nil {
		t.Fatalf("the follower did not install the recorded revision: %+v (%v)", st2.Attempted, err)
	}
	if name := ctrl.Tailnet().Settings.Name; name != "Example" {
		t.Errorf("the server serves tailnet %q; want Example, the recorded revision's", name)
	}
}
