package control

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// otherReplicaNode stores a node through a second handle on ts's
// database, as another replica would, and returns its row.
func otherReplicaNode(t *testing.T, ts *testServer, name, v4, v6 string) *store.Node {
	t.Helper()
	ctx := context.Background()
	other, err := store.Open(ctx, ts.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	n := &store.Node{
		StableID: "n-" + name, MachineKey: key.NewMachine().Public().String(), NodeKey: key.NewNode().Public().String(),
		Hostname: name, GivenName: name, UserLogin: "alice@example.com", IPv4: v4, IPv6: v6, AuthKey: "alice", CreatedAt: time.Now(),
	}
	if err := other.SaveNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRegisterAfterConflict: when the store refuses a new node because
// another replica just registered one with the address and name it was
// given, the registration reads the nodes again and succeeds with free
// ones; the other replica's node is known from then on.
func TestRegisterAfterConflict(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ts := startServer(t, testTailnet(), "")
	// The first addresses the server hands out, taken behind its back.
	taken := otherReplicaNode(t, ts, "alpha", "100.64.0.1", "fd7a:115c:a1e0::1")
	testkit.StartTSNet(t, ctx, testkit.TSNet{ControlURL: ts.URL, Hostname: "alpha", AuthKey: aliceKey})
	nodes, err := ts.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].ID != tailcfg.NodeID(taken.ID) {
		t.Fatalf("nodes %+v; want the other replica's alpha and the new node", nodes)
	}
	got := nodes[1]
	if got.Name != "alpha-2" || got.Addresses[0] == netip.MustParseAddr(taken.IPv4) || got.Addresses[1] == netip.MustParseAddr(taken.IPv6) {
		t.Errorf("the new node is %s at %v; want alpha-2 at addresses other than %s and %s", got.Name, got.Addresses, taken.IPv4, taken.IPv6)
	}
}

// TestRemoteRuntime: another replica's node is online while that
// replica says so; a node that moved to a third replica stays online when
// the one it left reports it offline or goes away; a replica going away
// takes its nodes offline.
func TestRemoteRuntime(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, testTailnet(), "")
	row := otherReplicaNode(t, ts, "remote", "100.64.0.9", "fd7a:115c:a1e0::9")
	if err := ts.ReloadNodes(ctx, nil); err != nil {
		t.Fatal(err)
	}
	id := tailcfg.NodeID(row.ID)
	ep := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:41641")}
	disco := key.NewDisco().Public()
	steps := []struct {
		what       string
		do         func() error
		wantOnline bool
	}{
		{"r1 reports it online", func() error {
			return ts.RemoteRuntime(ctx, "r1", []RuntimeState{{ID: id, Online: true, Disco: disco, Endpoints: ep, HomeDERP: 900}})
		}, true},
		{"it moves to r2", func() error {
			return ts.RemoteRuntime(ctx, "r2", []RuntimeState{{ID: id, Online: true, Disco: disco, Endpoints: ep, HomeDERP: 900}})
		}, true},
		{"r1 reports it offline late", func() error { return ts.RemoteRuntime(ctx, "r1", []RuntimeState{{ID: id}}) }, true},
		{"r1 goes away", func() error { return ts.ReplicaGone(ctx, "r1") }, true},
		{"r2 goes away", func() error { return ts.ReplicaGone(ctx, "r2") }, false},
		{"r3 reports it online", func() error { return ts.RemoteRuntime(ctx, "r3", []RuntimeState{{ID: id, Online: true}}) }, true},
		{"r3 reports it offline", func() error { return ts.RemoteRuntime(ctx, "r3", []RuntimeState{{ID: id}}) }, false},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		n, err := ts.Node(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if n.Online != st.wantOnline {
			t.Errorf("after %s: online %v; want %v", st.what, n.Online, st.wantOnline)
		}
	}
	if local, err := ts.LocalRuntime(ctx); err != nil || len(local) != 0 {
		t.Errorf("LocalRuntime: %+v, %v; want none (the node streams elsewhere)", local, err)
	}
}

// TestRandomAddrIn: the random search cursor of a registration that lost
// a race to another replica lies in the range.
func TestRandomAddrIn(t *testing.T) {
	for _, p := range []string{"100.64.0.0/10", "fd7a:115c:a1e0::/48", "10.0.0.0/24", "10.0.0.0/31", "2001:db8::/120"} {
		prefix := netip.MustParsePrefix(p)
		seen := map[netip.Addr]bool{}
		for range 200 {
			a := randomAddrIn(prefix)
			if !prefix.Contains(a) {
				t.Fatalf("randomAddrIn(%s) = %s, outside it", p, a)
			}
			seen[a] = true
		}
		if prefix.Bits() < 30 && len(seen) < 100 {
			t.Errorf("randomAddrIn(%s) gave only %d addresses in 200 draws", p, len(seen))
		}
	}
}

// TestRegistrationCommittedElsewhere: another replica committed a
// client's registration and died before answering; the client asks again
// here before this replica heard of the node. It gets that node (its ID
// and addresses), with a one-shot key whose use is counted as well as
// with a reusable one, and no second node is made.
func TestRegistrationCommittedElsewhere(t *testing.T) {
	for _, tc := range []struct {
		name, keyName, secret, user string
		limit                       int
	}{
		{"one-shot", "oneshot", oneShotKey, "bob@example.com", 1},
		{"reusable", "alice", aliceKey, "alice@example.com", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ts := startServer(t, testTailnet(), "")
			raw := newRawNode(t, ts)
			other, err := store.Open(ctx, ts.dir)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			row := &store.Node{
				StableID: "n-raw", MachineKey: raw.mk.Public().String(), NodeKey: raw.nk.Public().String(),
				Hostname: "raw", GivenName: "raw", UserLogin: tc.user, IPv4: "100.64.0.1", IPv6: "fd7a:115c:a1e0::1", AuthKey: tc.keyName, CreatedAt: time.Now(),
			}
			if err := other.RegisterNode(ctx, row, testkit.SecretHash(tc.secret), tc.limit); err != nil {
				t.Fatal(err)
			}
			r := raw.register(raw.registerReq(tc.secret))
			if r.Error != "" || !r.MachineAuthorized || r.Login.LoginName != tc.user {
				t.Fatalf("the retried registration: %+v; want it to succeed as %s", r, tc.user)
			}
			nodes, err := ts.Nodes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes) != 1 || nodes[0].ID != tailcfg.NodeID(row.ID) || nodes[0].Addresses[0] != netip.MustParseAddr(row.IPv4) {
				t.Errorf("nodes %+v; want only the other replica's node %d at %s", nodes, row.ID, row.IPv4)
			}
			if uses, err := other.AuthKeyUses(ctx, testkit.SecretHash(tc.secret)); err != nil || uses != 1 {
				t.Errorf("key uses %d (%v); want 1", uses, err)
			}
		})
	}
}
