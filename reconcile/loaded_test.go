package reconcile

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tailplane/tailplane/schema"
)

// loadConfig loads a config directory under testdata/reconcile with the
// real schema loader.
func loadConfig(t *testing.T, name string) *schema.Tailnet {
	t.Helper()
	tn, diags := schema.LoadDir(context.Background(), filepath.Join(goldenDir, name))
	if diags.HasErrors() || tn == nil {
		t.Fatalf("loading %s:\n%v", name, diags)
	}
	return tn
}

// TestLoadedConfigRoundTrip applies configs read by schema.LoadDir and
// checks that a restarted server (LoadApplied) would serve the same tailnet.
func TestLoadedConfigRoundTrip(t *testing.T) {
	for _, name := range []string{"config", "config_next"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			loaded := loadConfig(t, name)
			st, _ := openStore(t)
			if _, err := Apply(ctx, st, loaded, rev("c1")); err != nil {
				t.Fatal(err)
			}
			got, err := LoadApplied(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(loaded, got, tailnetCmp); diff != "" {
				t.Errorf("LoadApplied (-loaded +applied):\n%s", diff)
			}
			if diff := cmp.Diff(Desired(loaded), Desired(got)); diff != "" {
				t.Errorf("objects of the reloaded tailnet differ (-loaded +applied):\n%s", diff)
			}
		})
	}
}

// TestLoadedConfigPlan renders the plan between two loaded configs, with
// registered nodes in a real database.
func TestLoadedConfigPlan(t *testing.T) {
	ctx := context.Background()
	st, _ := openStore(t)
	addNodes(t, st,
		testNode{name: "cleo-laptop", user: "cleo@acme.test"},
		testNode{name: "ben-laptop", user: "ben@acme.test", authKey: "ben-laptop"},
		testNode{name: "gw-office", tags: []string{"tag:router"}, authKey: "servers"},
		testNode{name: "web1", tags: []string{"tag:web"}, authKey: "servers"},
		testNode{name: "old-box", tags: []string{"tag:legacy"}},
	)
	if _, err := Apply(ctx, st, loadConfig(t, "config"), rev("c1")); err != nil {
		t.Fatal(err)
	}
	p, err := PlanStore(ctx, st, loadConfig(t, "config_next"))
	if err != nil {
		t.Fatal(err)
	}
	var text, js bytes.Buffer
	if err := p.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "plan_loaded.txt", text.Bytes())
	checkGolden(t, "plan_loaded.json", js.Bytes())
}

// TestExamplesRoundTrip applies every bundled example and checks that
// LoadApplied gives it back and that re-planning shows no changes.
func TestExamplesRoundTrip(t *testing.T) {
	dirs, err := filepath.Glob("../examples/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no examples found (%v)", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			ctx := context.Background()
			tn, diags := schema.LoadDir(ctx, dir)
			if diags.HasErrors() {
				t.Fatalf("loading %s:\n%v", dir, diags)
			}
			st, _ := openStore(t)
			if _, err := Apply(ctx, st, tn, rev("c1")); err != nil {
				t.Fatal(err)
			}
			got, err := LoadApplied(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tn, got, tailnetCmp); diff != "" {
				t.Errorf("LoadApplied (-loaded +applied):\n%s", diff)
			}
			p, err := PlanStore(ctx, st, tn)
			if err != nil || !p.Empty() {
				t.Errorf("re-plan = %v, %v; want no changes", p.Summary(), err)
			}
		})
	}
}
