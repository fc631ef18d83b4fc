package admin_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	tsclient "tailscale.com/client/tailscale"
	"tailscale.com/tsnet"

	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/internal/testkit"
)

// TestV2DevicesWithTailscaleClient drives the API v2 device endpoints with
// Tailscale's own Go API client against server.New and two real tsnet
// nodes: the list and each device in Tailscale's shape, by id and by
// nodeId; a read key cannot delete; an admin key deletes a device, which
// leaves the real peer's status, and the deletion is in the audit log.
func TestV2DevicesWithTailscaleClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := startServer(t, nodesConfig(t), t.TempDir())
	web1 := testkit.StartTSNet(t, ctx, testkit.TSNet{ControlURL: srv.URL(), Hostname: "web1", AuthKey: serverKey})
	web2 := testkit.StartTSNet(t, ctx, testkit.TSNet{ControlURL: srv.URL(), Hostname: "web2", AuthKey: serverKey})
	waitPeers(t, ctx, web1, "web2")

	tsclient.I_Acknowledge_This_API_Is_Unstable = true
	client := func(key string) *tsclient.Client {
		c := tsclient.NewClient("-", tsclient.APIKey(key))
		c.BaseURL = srv.URL()
		return c
	}
	ro, rw := client(roKey), client(rwKey)

	devs, err := ro.Devices(ctx, tsclient.DeviceAllFields)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range devs {
		got = append(got, d.Name+" "+d.User+" "+strings.Join(d.Tags, ",")+" "+strings.Join(d.Addresses, ","))
	}
	var want []string
	for _, n := range []struct{ name, addrs string }{{"web1", addrsOf(web1)}, {"web2", addrsOf(web2)}} {
		want = append(want, n.name+"."+domain+" tagged-devices tag:server "+n.addrs)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("devices (-want +got):\n%s", diff)
	}
	web2dev := *devs[1]
	if !web2dev.Authorized || web2dev.NodeID == "" || web2dev.DeviceID == "" || web2dev.Created == "" || web2dev.NodeKey == "" ||
		!web2dev.KeyExpiryDisabled || web2dev.EnabledRoutes == nil {
		t.Errorf("device %+v lacks fields", web2dev)
	}
	for _, id := range []string{web2dev.DeviceID, web2dev.NodeID} {
		d, err := ro.Device(ctx, id, nil)
		if err != nil {
			t.Fatalf("device %s: %v", id, err)
		}
		want := web2dev
		want.EnabledRoutes, want.AdvertisedRoutes = nil, nil // not among the default fields
		want.LastSeen = d.LastSeen                           // the time of the listing while online
		if diff := cmp.Diff(want, *d); diff != "" {
			t.Errorf("device %s (-listed +got):\n%s", id, diff)
		}
	}

	var apiErr tsclient.ErrResponse
	if err := ro.DeleteDevice(ctx, web2dev.DeviceID); !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Fatalf("delete with the read key: %v, want 403", err)
	}
	if err := rw.DeleteDevice(ctx, web2dev.NodeID); err != nil {
		t.Fatalf("delete with the admin key: %v", err)
	}
	waitPeers(t, ctx, web1) // gone from the real peer's status
	if _, err := ro.Device(ctx, web2dev.NodeID, nil); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("the deleted device: %v, want 404", err)
	}
	var log []admin.AuditEntry
	getJSON(t, srv.URL()+"/api/v1/audit", &log)
	if len(log) == 0 || log[0].Who != "apikey:rw" || log[0].What != "delete node web2 ("+web2dev.DeviceID+")" || log[0].Result != "ok" {
		t.Errorf("audit log %+v, want the deletion by apikey:rw first", log)
	}
}

// addrsOf is n's Tailscale addresses, comma-separated, IPv4 first.
func addrsOf(n *tsnet.Server) string {
	v4, v6 := n.TailscaleIPs()
	return v4.String() + "," + v6.String()
}
