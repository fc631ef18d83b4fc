package replica

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// TestBatches: runtime states are sent in JSON arrays that each fit the
// notification limit and together hold every state once, in order.
func TestBatches(t *testing.T) {
	state := func(i int) control.RuntimeState {
		return control.RuntimeState{
			ID: tailcfg.NodeID(i + 1), Online: i%2 == 0, Disco: key.NewDisco().Public(), HomeDERP: 900, Cap: 130,
			Endpoints: []netip.AddrPort{
				netip.MustParseAddrPort(fmt.Sprintf("192.0.2.%d:41641", i%250)),
				netip.MustParseAddrPort("[2001:db8::1]:41641"),
			},
		}
	}
	for _, tc := range []struct {
		name   string
		states int
		limit  int
	}{
		{"none", 0, store.MaxNotifyBody},
		{"one", 1, store.MaxNotifyBody},
		{"a thousand nodes", 1000, store.MaxNotifyBody},
		{"one per batch", 5, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []control.RuntimeState
			for i := range tc.states {
				want = append(want, state(i))
			}
			var got []control.RuntimeState
			bodies := batches(want, tc.limit)
			for _, b := range bodies {
				if len(b) > tc.limit {
					t.Errorf("a batch of %d bytes; the limit is %d", len(b), tc.limit)
				}
				var part []control.RuntimeState
				if err := json.Unmarshal([]byte(b), &part); err != nil || len(part) == 0 {
					t.Fatalf("batch %q: %v (or empty)", b, err)
				}
				got = append(got, part...)
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b key.DiscoPublic) bool { return a == b }), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("states through %d batches (-want +got):\n%s", len(bodies), diff)
			}
			if tc.states > 1 && len(bodies) == tc.states && tc.limit == store.MaxNotifyBody {
				t.Errorf("%d states in %d batches: not batched", tc.states, len(bodies))
			}
		})
	}
}
