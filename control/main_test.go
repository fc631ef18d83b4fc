package control

import (
	stdcmp "cmp"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/tailplane/tailplane/policy"
)

// TestMain runs the package's tests with every incremental policy update
// checked (see verifyInventory): the engine's inventory after
// world.updatePolicy must be what world.inventory describes from scratch,
// or the tests fail, listing the first differences. Benchmarks (-bench)
// run without the check, which costs a pass over every node.
func TestMain(m *testing.M) {
	flag.Parse()
	var mu sync.Mutex
	var problems []string
	check := func(w *world) {
		if diff := inventoryDiff(w); diff != "" {
			mu.Lock()
			problems = append(problems, diff)
			mu.Unlock()
		}
	}
	if flag.Lookup("test.bench").Value.String() == "" {
		verifyInventory = check
	}
	code := m.Run()
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d incremental policy updates left an inventory other than world.inventory's; the first (-inventory +engine):\n%s\n", len(problems), problems[0])
		code = 1
	}
	os.Exit(code)
}

// inventoryDiff compares the served policy result's inventory with the
// world's, from scratch, and the per-machine index with the nodes.
func inventoryDiff(w *world) string {
	indexed := 0
	for mk, ns := range w.byMachine {
		for _, n := range ns {
			if w.nodes[n.id] != n || n.machine != mk {
				return fmt.Sprintf("byMachine[%v] lists node %d, which is not the world's node of that machine", mk.ShortString(), n.id)
			}
		}
		indexed += len(ns)
	}
	if indexed != len(w.nodes) {
		return fmt.Sprintf("byMachine lists %d nodes, the world has %d", indexed, len(w.nodes))
	}
	want := w.inventory()
	slices.SortFunc(want, func(a, b policy.Node) int { return stdcmp.Compare(a.ID, b.ID) })
	return cmp.Diff(want, w.res.Inventory(), cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}))
}
