package control

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/internal/testkit"
	"tailscale.com/tailcfg"
)

// checkExpiredMap fails the test unless m is the expired netmap: the
// node itself, expired, and nothing of the tailnet.
func checkExpiredMap(t *testing.T, what string, m *tailcfg.MapResponse, others ...tailcfg.NodeID) {
	t.Helper()
	if m.Node == nil || !m.Node.Expired {
		t.Errorf("%s: self node %v, want it marked expired", what, m.Node)
	}
	if len(m.Peers) != 0 || len(m.PeersChanged) != 0 || len(m.PeersChangedPatch) != 0 {
		t.Errorf("%s: got peers %v %v %v, want none", what, m.Peers, m.PeersChanged, m.PeersChangedPatch)
	}
	for _, id := range others {
		if !slices.Contains(m.PeersRemoved, id) {
			t.Errorf("%s: PeersRemoved %v lacks node %d", what, m.PeersRemoved, id)
		}
	}
	if diff := cmp.Diff(map[string][]tailcfg.FilterRule{"*": nil}, m.PacketFilters); diff != "" {
		t.Errorf("%s: packet filter is not deny-all (-want +got):\n%s", what, diff)
	}
	if m.DNSConfig == nil || len(m.DNSConfig.Resolvers) != 0 || len(m.DNSConfig.ExtraRecords) != 0 {
		t.Errorf("%s: DNS config %+v, want an empty one", what, m.DNSConfig)
	}
}

// An expired node gets nothing but its expired self; its updates are
// refused and reach no peer.
func TestExpiredNodeGetsNothingButReauth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tn := testTailnet()
	tn.Settings.NodeKeyExpiry = 24 * time.Hour
	tn.Settings.EphemeralTimeout = time.Second // the sweep that expires keys runs every 250 ms
	clock := newTestClock(time.Now())
	ts := startServerWith(t, tn, "", func(c *Config) {
		c.Now = clock.Now
		c.KeepAlive = 200 * time.Millisecond
	})

	watcher := newRawNode(t, ts) // tagged: never expires
	watcher.register(watcher.registerReq(serverKey))
	ws := watcher.stream(ctx, watcher.mapReq(true, "192.0.2.1:41641"))
	watcherID := ws.next().Node.ID
	user := newRawNode(t, ts)
	user.register(user.registerReq(aliceKey))
	us := user.stream(ctx, user.mapReq(true, "192.0.2.2:41641"))
	m := us.next()
	userID := m.Node.ID
	if len(m.Peers) != 1 {
		t.Fatalf("before expiry the user node has peers %v, want the watcher", m.Peers)
	}

	clock.Advance(25 * time.Hour)
	for m = us.next(); m.Node == nil || !m.Node.Expired; m = us.next() {
	}
	checkExpiredMap(t, "open stream at expiry", m, watcherID)
	for {
		m := ws.next()
		i := slices.IndexFunc(m.PeersChanged, func(p *tailcfg.Node) bool { return p.ID == userID && p.Expired })
		if i < 0 {
			continue
		}
		if p := m.PeersChanged[i]; len(p.Endpoints) != 0 || p.HomeDERP != 0 || *p.Online {
			t.Errorf("watcher's view of the expired node: endpoints %v, home DERP %d, online %v; want no endpoints or DERP, offline", p.Endpoints, p.HomeDERP, *p.Online)
		}
		break
	}

	// New map requests get the expired netmap; an update is refused.
	checkExpiredMap(t, "non-streaming map request", user.selfMap(), watcherID)
	us = user.stream(ctx, user.mapReq(true)) // replaces the first stream
	checkExpiredMap(t, "new map stream", us.next(), watcherID)
	if code, body := user.post("/machine/map", user.mapReq(false, "192.0.2.99:41641")); code != 403 || !strings.Contains(string(body), "expired") {
		t.Errorf("endpoint update from the expired node: HTTP %d %s, want 403 saying the key expired", code, body)
	}

	// A node joining next reaches the watcher; nothing of the expired
	// node's update came before it, and the expired node hears of neither.
	other := newRawNode(t, ts)
	other.register(other.registerReq(aliceKey))
	for {
		m := ws.next()
		for _, pc := range m.PeersChangedPatch {
			if pc.NodeID == userID {
				t.Errorf("the watcher got a patch of the expired node: %+v", pc)
			}
		}
		for _, p := range m.PeersChanged {
			if p.ID == userID {
				t.Errorf("the watcher got the expired node again, endpoints %v", p.Endpoints)
			}
		}
		if len(m.PeersChanged) > 0 && m.PeersChanged[0].Key == other.nk.Public() {
			break
		}
	}
	for keepAlives := 0; keepAlives < 2; {
		m := us.nextAny()
		if m.KeepAlive {
			keepAlives++
			continue
		}
		if len(m.Peers) > 0 || len(m.PeersChanged) > 0 || len(m.PeersChangedPatch) > 0 {
			t.Errorf("the expired node's stream got %s, want only keep-alives", describeMap(m))
		}
	}
}

func describeMap(m *tailcfg.MapResponse) string {
	var ids []tailcfg.NodeID
	for _, p := range append(slices.Clone(m.Peers), m.PeersChanged...) {
		ids = append(ids, p.ID)
	}
	return fmt.Sprintf("a message with peers %v, patches %d, removed %v", ids, len(m.PeersChangedPatch), m.PeersRemoved)
}

// A real client whose key expires goes to NeedsLogin, keeps no peers, and
// its peer sees it expired.
func TestExpiredTSNetNodeNeedsLogin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tn := testTailnet()
	// The client judges its own key by its own clock, so the key expires
	// for real: soon, but long after the node came up.
	tn.Settings.NodeKeyExpiry = 15 * time.Second
	tn.Settings.EphemeralTimeout = time.Second // the sweep that expires keys runs every 250 ms
	ts := startServer(t, tn, "")
	peer := testkit.StartTSNet(t, ctx, testkit.TSNet{ControlURL: ts.URL, Hostname: "peer", AuthKey: serverKey}) // tagged: never expires
	node := testkit.StartTSNet(t, ctx, testkit.TSNet{ControlURL: ts.URL, Hostname: "expiring", AuthKey: aliceKey})
	lc, err := node.LocalClient()
	if err != nil {
		t.Fatal(err)
	}
	lcPeer, err := peer.LocalClient()
	if err != nil {
		t.Fatal(err)
	}
	st, err := lc.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Self.KeyExpiry == nil {
		t.Fatalf("the user node has no key expiry")
	}
	expiry := *st.Self.KeyExpiry

	testkit.WaitFor(t, ctx, "the expired node to need login, without peers", func() (bool, string) {
		st, err := lc.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.BackendState == "NeedsLogin" && len(st.Peer) == 0, fmt.Sprintf("state %s, peers %v (key expiry %s)", st.BackendState, peerNames(st), expiry.Format(time.RFC3339))
	})
	testkit.WaitFor(t, ctx, "the peer to see the node expired and offline", func() (bool, string) {
		st, err := lcPeer.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range st.Peer {
			if strings.HasPrefix(p.DNSName, "expiring.") {
				return p.Expired && !p.Online, fmt.Sprintf("expired %v, online %v", p.Expired, p.Online)
			}
		}
		return false, fmt.Sprintf("peers %v", peerNames(st))
	})
}
