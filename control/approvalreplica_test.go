package control

import (
	"context"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
)

// TestApprovalFromAnotherReplica: a node waiting for approval on this
// server is approved by another replica (its row saved through another
// handle, then ReloadNodes as the replica's notification does): its map
// stream here gets MachineAuthorized and the node runs, though nothing
// else changed for it.
func TestApprovalFromAnotherReplica(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ts := startServer(t, approvalTailnet(), "")
	laptop := testkit.StartTSNet(t, ctx, testkit.TSNet{ControlURL: ts.URL, Hostname: "laptop", AuthKey: laptopKey, NoWait: true})
	lc, _ := laptop.LocalClient()
	testkit.WaitFor(t, ctx, "the laptop to wait for approval", func() (bool, string) {
		st, err := lc.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.BackendState == "NeedsMachineAuth", st.BackendState
	})
	id := nodeNamed(t, ctx, ts.Server, "laptop").ID
	other, err := store.Open(ctx, ts.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	row, err := other.NodeByID(ctx, int64(id))
	if err != nil {
		t.Fatal(err)
	}
	row.PendingApproval = false
	if err := other.SaveNode(ctx, row); err != nil {
		t.Fatal(err)
	}
	if err := ts.ReloadNodes(ctx, []tailcfg.NodeID{id}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, ctx, "the laptop, approved on another replica, to run", func() (bool, string) {
		st, err := lc.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.BackendState == "Running", st.BackendState
	})
}
