package admin_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/internal/testkit"
)

// TestMetricsPendingApprovalAndAudit: with the node inventory wired in
// (server.New), a real node waiting for device approval is counted by
// tailplane_nodes_pending_approval until it is approved, and every
// audited API action by tailplane_audit_actions_total with its result.
func TestMetricsPendingApprovalAndAudit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := startServer(t, nodesConfig(t), t.TempDir())
	laptop := testkit.StartTSNet(t, ctx, testkit.TSNet{ControlURL: srv.URL(), Hostname: "laptop", AuthKey: laptopKey, NoWait: true})
	waitPending(t, ctx, laptop)
	names := []string{"tailplane_nodes_pending_approval", "tailplane_audit_actions_total"}
	expect := func(what string, want map[string]float64) {
		t.Helper()
		testkit.WaitFor(t, ctx, what, func() (bool, string) {
			fams, err := admin.Scrape(ctx, srv.URL(), roKey)
			if err != nil {
				return false, err.Error()
			}
			diff := cmp.Diff(want, admin.Values(fams, names...))
			return diff == "", "(-want +got)\n" + diff
		})
	}
	expect("one pending node, nothing audited", map[string]float64{"tailplane_nodes_pending_approval": 1})

	base := srv.URL() + "/api/v1/nodes/"
	id := strconv.Itoa(int(nodeByName(t, srv.URL()+"/api/v1", "laptop").ID))
	if code, _, body := do(t, "POST", base+id+"/approve", rwKey, nil); code != http.StatusOK {
		t.Fatalf("approve: %d %s", code, body)
	}
	if code, _, body := do(t, "POST", base+"999/expire", rwKey, nil); code != http.StatusNotFound {
		t.Fatalf("expire a missing node: %d %s", code, body)
	}
	expect("the approval and the failed expiry counted", map[string]float64{
		"tailplane_nodes_pending_approval":                          0,
		"tailplane_audit_actions_total{action=approve,result=ok}":   1,
		"tailplane_audit_actions_total{action=expire,result=error}": 1,
	})
}
