package control

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/store"
)

// authKeysOnly is the refusal every login without an auth key gets while
// interactive login is off (Config.Login nil, as startServer leaves it).
const authKeysOnly = "this server registers nodes with auth keys only"

// With interactive login off, `tailscale up --force-reauth` without an
// auth key gets the refusal a fresh `tailscale up` without a key gets, and
// re-authenticates nothing (with it on, TestInteractive* and the server
// tests cover the login).
func TestForceReauthWithoutAuthKeyIsRefused(t *testing.T) {
	bins := testkit.TailscaledBinaries(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ts := startServer(t, testTailnet(), "")
	start := func(name string) func(args ...string) (string, error) {
		n := testkit.StartTailscaled(t, ctx, bins, filepath.Join(t.TempDir(), name))
		return func(args ...string) (string, error) {
			// A login the server does not answer would wait forever.
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			out, err := n.Tailscale(cctx, append([]string{"up", "--login-server=" + ts.URL, "--hostname=" + name}, args...)...)
			return string(out), err
		}
	}

	fresh := start("fresh")
	out, err := fresh()
	if err == nil || !strings.Contains(out, authKeysOnly) {
		t.Fatalf("fresh `tailscale up` without an auth key: err %v, output:\n%s\nwant a failure saying %q", err, out, authKeysOnly)
	}

	up := start("reauth")
	if out, err := up("--auth-key=" + aliceKey); err != nil {
		t.Fatalf("tailscale up --auth-key: %v\n%s", err, out)
	}
	before := storedNodes(t, ctx, ts)
	out, err = up("--force-reauth")
	if err == nil || !strings.Contains(out, authKeysOnly) {
		t.Errorf("tailscale up --force-reauth without an auth key: err %v, output:\n%s\nwant a failure saying %q", err, out, authKeysOnly)
	}
	after := storedNodes(t, ctx, ts)
	if len(after) != 1 || after[0].ID != before[0].ID || after[0].NodeKey != before[0].NodeKey || !after[0].KeyExpiry.Equal(before[0].KeyExpiry) {
		t.Errorf("after the refused re-auth the store holds %s, want the node unchanged: %s", describeNodes(after), describeNodes(before))
	}
}

func describeNodes(nodes []*store.Node) string {
	var b strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&b, "[node %d, key %s, expiry %s] ", n.ID, n.NodeKey, n.KeyExpiry.Format(time.RFC3339))
	}
	return b.String()
}

// storedNodes returns the nodes in ts's store, failing the test on error.
func storedNodes(t *testing.T, ctx context.Context, ts *testServer) []*store.Node {
	t.Helper()
	nodes, err := ts.Store.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}
