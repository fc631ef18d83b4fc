package control

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/policy"
	"github.com/tailplane/tailplane/schema"
)

// TestServerTestUsesServedNodes: Test runs a prepared config's policy
// tests against the nodes the server evaluates (here a registered
// tag:server node, known by its address only), not against stand-ins
// alone, and a node that logs out leaves the test inventory as it leaves
// the served one.
func TestServerTestUsesServedNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServer(t, testTailnet(), "")
	srvNode := newRawNode(t, ts)
	if r := srvNode.register(srvNode.registerReq(serverKey)); r.Error != "" {
		t.Fatalf("register: %s", r.Error)
	}
	rows, err := ts.Store.Nodes(ctx)
	if err != nil || len(rows) != 1 {
		t.Fatalf("stored nodes %v, %v; want the one registered", rows, err)
	}
	ip := rows[0].IPv4

	tn := testTailnet()
	tn.Policy.ACLs = []schema.ACL{{Action: "accept", Src: []string{"alice@example.com"}, Dst: []string{"tag:server:80"}}}
	tn.Policy.Tests = []schema.ACLTest{{Src: "alice@example.com", Accept: []string{ip + ":80"}, Deny: []string{ip + ":22"}}}
	p, err := ts.Prepare(tn)
	if err != nil {
		t.Fatal(err)
	}
	diags, err := ts.Test(ctx, p)
	if err != nil || len(diags) != 0 {
		t.Fatalf("Test with the server node registered = %v, %v; want it to pass", diags, err)
	}
	if ts.Tailnet() == tn {
		t.Error("Test installed the config")
	}

	if r := srvNode.logout(); r.Error != "" {
		t.Fatalf("logout: %s", r.Error)
	}
	diags, err = ts.Test(ctx, p)
	if err != nil || len(diags) != 1 || diags[0].Path != "tests[0].accept[0]" {
		t.Fatalf("Test with the server node logged out = %v, %v; want tests[0].accept[0] to fail", diags, err)
	}
}

// TestInventoryUnderNewConfig: the test inventory of a prepared config
// approves routes as that config does, not as the served one.
func TestInventoryUnderNewConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServer(t, routeTailnet(), "")
	lab := netip.MustParsePrefix("10.99.0.0/24")
	n := newRawNode(t, ts)
	req := n.registerReq(routerKey)
	req.Hostinfo.Hostname = "lab-router"
	req.Hostinfo.RequestTags = []string{"tag:router"}
	req.Hostinfo.RoutableIPs = []netip.Prefix{lab}
	if r := n.register(req); r.Error != "" {
		t.Fatalf("register: %s", r.Error)
	}
	next := routeTailnet()
	next.Routes["tag:router"] = append(next.Routes["tag:router"], lab)
	p, err := ts.Prepare(next)
	if err != nil {
		t.Fatal(err)
	}
	var served, prepared []policy.Node
	err = ts.do(ctx, func(w *world) error {
		served, prepared = w.inventory(), w.inventoryUnder(p.Tailnet(), p.Policy())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(served) != 1 || len(served[0].ApprovedRoutes) != 0 {
		t.Errorf("served inventory %+v, want the router with nothing approved", served)
	}
	if len(prepared) != 1 {
		t.Fatalf("prepared config's inventory %+v, want the router", prepared)
	}
	if diff := cmp.Diff([]netip.Prefix{lab}, prepared[0].ApprovedRoutes, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("prepared config's inventory approves (-want +got):\n%s", diff)
	}
}

// TestInventoryUnderPrunes: policy tests of a new config see the nodes as
// installing it leaves them: a node whose user the config drops is gone,
// and a tagged node keeps only the tags the config still declares.
func TestInventoryUnderPrunes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := startServer(t, routeTailnet(), "")
	bob := newRawNode(t, ts)
	if r := bob.register(bob.registerReq(bobKey)); r.Error != "" {
		t.Fatalf("register bob: %s", r.Error)
	}
	srv := newRawNode(t, ts)
	req := srv.registerReq(serverKey)
	req.Hostinfo.RequestTags = []string{"tag:server", "tag:router"}
	if r := srv.register(req); r.Error != "" {
		t.Fatalf("register server: %s", r.Error)
	}
	next := routeTailnet()
	delete(next.Users, "bob@example.com")
	for name, k := range next.AuthKeys {
		if k.User == "bob@example.com" {
			delete(next.AuthKeys, name)
		}
	}
	delete(next.Policy.TagOwners, "tag:router")
	for k := range next.Routes {
		if strings.HasPrefix(k, "tag:router") || strings.HasPrefix(k, "bob@") {
			delete(next.Routes, k)
		}
	}
	p, err := ts.Prepare(next)
	if err != nil {
		t.Fatal(err)
	}
	owners := func(nodes []policy.Node) []string {
		var out []string
		for _, n := range nodes {
			out = append(out, n.User+strings.Join(n.Tags, ","))
		}
		slices.Sort(out)
		return out
	}
	var served, prepared []policy.Node
	err = ts.do(ctx, func(w *world) error {
		served, prepared = w.inventory(), w.inventoryUnder(p.Tailnet(), p.Policy())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"bob@example.com", "tag:router,tag:server"}, owners(served)); diff != "" {
		t.Errorf("served inventory (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"tag:server"}, owners(prepared)); diff != "" {
		t.Errorf("inventory under the new config (-want +got):\n%s", diff)
	}
}
