package control

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// relayClient is tailscale.com's DERP client for ts's embedded relay,
// speaking as node key k.
func relayClient(t *testing.T, ts *testServer, k key.NodePrivate) *derphttp.Client {
	t.Helper()
	region := ts.DERP.Map.Regions[900]
	c := derphttp.NewRegionClient(k, func(string, ...any) {}, netmon.NewStatic(), func() *tailcfg.DERPRegion { return region })
	t.Cleanup(func() { c.Close() })
	return c
}

// recv is c.Recv, failing the test if the relay neither sends anything nor
// closes the connection within 30 s.
func recv(t *testing.T, c *derphttp.Client) (derp.ReceivedMessage, error) {
	t.Helper()
	type result struct {
		m   derp.ReceivedMessage
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := c.Recv()
		ch <- result{m, err}
	}()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-time.After(30 * time.Second):
		c.Close()
		t.Fatalf("relay client %s: nothing received and the connection not closed in 30 s", c.SelfPublicKey().ShortString())
		return nil, nil
	}
}

// relayAdmits reports whether a fresh connection as k gets the relay's
// greeting (its server info), which the relay sends an admitted client
// first; a refused client's connection is closed instead.
func relayAdmits(t *testing.T, ts *testServer, k key.NodePrivate) (bool, string) {
	t.Helper()
	m, err := recv(t, relayClient(t, ts, k))
	if err != nil {
		return false, err.Error()
	}
	_, ok := m.(derp.ServerInfoMessage)
	return ok, fmt.Sprintf("first message %T", m)
}

func TestRelayAdmitsOnlyTailnetNodes(t *testing.T) {
	tn := testTailnet()
	tn.Settings.NodeKeyExpiry = 24 * time.Hour
	tn.Settings.EphemeralTimeout = time.Second // the sweep, which also expires keys, runs every 250 ms
	clock := newTestClock(time.Now())
	ts := startServerWith(t, tn, "", func(c *Config) { c.Now = clock.Now })

	if ok, got := relayAdmits(t, ts, key.NewNode()); ok {
		t.Errorf("a node key registered nowhere was admitted to the relay (%s)", got)
	}

	// Two registered nodes relay a packet to each other.
	a, b := newRawNode(t, ts), newRawNode(t, ts)
	a.register(a.registerReq(aliceKey))
	b.register(b.registerReq(serverKey))
	ca, cb := relayClient(t, ts, a.nk), relayClient(t, ts, b.nk)
	for _, c := range []*derphttp.Client{ca, cb} {
		if m, err := recv(t, c); err != nil {
			t.Fatalf("registered node %s refused by the relay: %v", c.SelfPublicKey().ShortString(), err)
		} else if _, ok := m.(derp.ServerInfoMessage); !ok {
			t.Fatalf("registered node's first message from the relay is %T, want its server info", m)
		}
	}
	if err := ca.Send(b.nk.Public(), []byte("hello b")); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := recv(t, cb)
		if err != nil {
			t.Fatalf("b's relay connection: %v", err)
		}
		if p, ok := m.(derp.ReceivedPacket); ok {
			if p.Source != a.nk.Public() || string(p.Data) != "hello b" {
				t.Errorf("b got %q from %s, want %q from a", p.Data, p.Source.ShortString(), "hello b")
			}
			break
		}
	}

	// A node that stops being a logged-in, unexpired node of the tailnet
	// loses its relay connection and cannot connect again.
	for _, tt := range []struct {
		name    string
		authKey string
		revoke  func(t *testing.T, n *rawNode)
	}{
		{"logged-out", aliceKey, func(_ *testing.T, n *rawNode) { n.logout() }},
		{"removed", ephemeralKy, func(_ *testing.T, n *rawNode) { n.logout() }}, // ephemeral nodes are deleted on logout
		{"expired", aliceKey, func(*testing.T, *rawNode) { clock.Advance(25 * time.Hour) }},
		{"owner-undeclared", limitedKey, func(t *testing.T, _ *rawNode) { // the config drops bob: his nodes are logged out
			without := *tn
			without.Users = maps.Clone(tn.Users)
			delete(without.Users, "bob@example.com")
			if err := ts.SetConfig(context.Background(), &without); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newRawNode(t, ts)
			if r := n.register(n.registerReq(tt.authKey)); r.Error != "" {
				t.Fatal(r.Error)
			}
			c := relayClient(t, ts, n.nk)
			if _, err := recv(t, c); err != nil {
				t.Fatalf("registered node refused by the relay: %v", err)
			}
			tt.revoke(t, n)
			for {
				m, err := recv(t, c)
				if err != nil {
					break // the relay closed the connection
				}
				if _, ok := m.(derp.KeepAliveMessage); !ok {
					t.Fatalf("relay connection of a %s node got %T, want it closed", tt.name, m)
				}
			}
			if ok, got := relayAdmits(t, ts, n.nk); ok {
				t.Errorf("a %s node was admitted to the relay again (%s)", tt.name, got)
			}
		})
	}
}

// A relay no Server is attached to serves nobody.
func TestRelayWithoutServerRefusesAll(t *testing.T) {
	d, err := StartDERP(context.Background(), DERPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ts := &testServer{DERP: d}
	if ok, got := relayAdmits(t, ts, key.NewNode()); ok {
		t.Errorf("a relay with no server attached admitted a client (%s)", got)
	}
}
