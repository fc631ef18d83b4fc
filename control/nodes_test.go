package control

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
)

// TestNodeInventory: the listing describes each node as the issue asks:
// owner, addresses, OS and version, key expiry, and its advertised routes
// against the approved ones with the rule that approves each.
func TestNodeInventory(t *testing.T) {
	ctx := context.Background()
	tn := testTailnet()
	tn.Routes["tag:router/edge"] = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	tn.Policy.AutoApprovers.Routes = map[string][]string{"198.51.100.0/24": {"tag:router"}}
	ts := startServer(t, tn, "")
	r := newRawNode(t, ts)
	req := r.registerReq(serverKey)
	req.Hostinfo = &tailcfg.Hostinfo{Hostname: "Edge", OS: "linux", IPNVersion: "1.102.5", RequestTags: []string{"tag:router"},
		RoutableIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/25"),
			netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("10.9.0.0/16")}}
	if resp := r.register(req); resp.Error != "" {
		t.Fatal(resp.Error)
	}
	a := newRawNode(t, ts)
	a.register(a.registerReq(aliceKey))

	nodes, err := ts.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 {
		t.Fatalf("listed %d nodes, want 2", len(nodes))
	}
	edge, alice := nodes[0], nodes[1]
	want := NodeInfo{
		ID: edge.ID, Name: "edge", FQDN: "edge.tail.test", Hostname: "Edge", Tags: []string{"tag:router", "tag:server"},
		OS: "linux", ClientVersion: "1.102.5", AuthKey: "servers",
		AdvertisedRoutes: req.Hostinfo.RoutableIPs,
		ApprovedRoutes: []RouteApproval{
			{netip.MustParsePrefix("192.0.2.0/24"), `routes["tag:router"]`},
			{netip.MustParsePrefix("198.51.100.0/25"), `autoApprovers.routes["198.51.100.0/24"]`},
			{netip.MustParsePrefix("203.0.113.0/24"), `routes["tag:router/edge"]`},
		},
		PrimaryRoutes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/25"), netip.MustParsePrefix("203.0.113.0/24")},
	}
	ignore := cmpopts.IgnoreFields(NodeInfo{}, "StableID", "Addresses", "MachineKey", "NodeKey", "Created")
	if diff := cmp.Diff(want, edge, ignore, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("edge (-want +got):\n%s", diff)
	}
	if alice.User != "alice@example.com" || len(alice.Addresses) != 2 || !alice.Addresses[0].Is4() || alice.Created.IsZero() ||
		alice.MachineKey != a.mk.Public().String() || alice.NodeKey != a.nk.Public().String() {
		t.Errorf("alice's node: %+v", alice)
	}
	got, err := ts.Node(ctx, edge.ID)
	if err != nil || !cmp.Equal(got, edge, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })) {
		t.Errorf("Node(%d) = %+v, %v; want the listed %+v", edge.ID, got, err, edge)
	}
	if _, err := ts.Node(ctx, 999); !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("Node(999): %v, want ErrNodeNotFound", err)
	}
}

// TestNodeActionsReachStreams: expire, rename and delete reach a peer's
// open map stream at once, and the acted-on node's own.
func TestNodeActionsReachStreams(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts, sa, b, bID := streamingPeers(t, ctx)
	sb := b.stream(ctx, b.mapReq(true))
	sb.next()

	if _, err := ts.RenameNode(ctx, bID, "Bad Name"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("rename to a non-label: %v, want ErrInvalidName", err)
	}
	nodes, _ := ts.Nodes(ctx)
	a := nodes[slices.IndexFunc(nodes, func(n NodeInfo) bool { return n.ID != bID })]
	aID := a.ID
	if _, err := ts.RenameNode(ctx, bID, a.Name); !errors.Is(err, ErrNameTaken) {
		t.Errorf("rename to a's name: %v, want ErrNameTaken", err)
	}
	info, err := ts.RenameNode(ctx, bID, "renamed")
	if err != nil || info.FQDN != "renamed.tail.test" {
		t.Fatalf("rename: %+v, %v", info, err)
	}
	// Messages about b from before (its stream coming up) may come first;
	// a stream that never shows the change fails at ctx's deadline.
	for p := changedPeer(sa, bID); p.Name != "renamed.tail.test."; p = changedPeer(sa, bID) {
		t.Logf("a's stream after the rename, waiting for the new name: b is %q", p.Name)
	}
	stored, _ := ts.Store.Nodes(ctx)
	if i := slices.IndexFunc(stored, func(n *store.Node) bool { return n.ID == int64(bID) }); i < 0 || stored[i].GivenName != "renamed" {
		t.Errorf("the new name is not saved")
	}

	if _, err := ts.ExpireNode(ctx, bID); err != nil {
		t.Fatal(err)
	}
	for p := changedPeer(sa, bID); !p.Expired; p = changedPeer(sa, bID) {
		t.Logf("a's stream after expiring b, waiting for the expiry: b is %q, not expired", p.Name)
	}
	m := sb.next()
	for m.Node == nil || !m.Node.Expired { // the rename's messages may come first
		m = sb.next()
	}
	checkExpiredMap(t, "b's stream after its expiry", m, aID)

	if _, err := ts.DeleteNode(ctx, bID); err != nil {
		t.Fatal(err)
	}
	for m := sa.next(); !slices.Contains(m.PeersRemoved, bID); m = sa.next() {
		t.Logf("a's stream after deleting b, waiting for b's removal: %s", describeMap(m))
	}
	if _, err := ts.DeleteNode(ctx, bID); !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("deleting twice: %v, want ErrNodeNotFound", err)
	}
}

// changedPeer returns node id from the next message of s that changes it
// as a whole (patches are skipped).
func changedPeer(s *mapStream, id tailcfg.NodeID) *tailcfg.Node {
	s.t.Helper()
	for {
		for _, p := range s.nextAbout(id).PeersChanged {
			if p.ID == id {
				return p
			}
		}
	}
}
