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
// world's, from scratch.
func inventoryDiff(w *world) string {
	want := w.inventory()
	slices.SortFunc(want, func(a, b policy.Node) int { return stdcmp.Compare(a.ID, b.ID) })
	return cmp.Diff(want, w.res.Inventory(), cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}))
}
