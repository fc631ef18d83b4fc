package admin_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/internal/testkit"
)

// TestNodesAPIWithRealClients drives the node actions over the admin API
// against real tsnet nodes, and checks what each does to the netmaps the
// nodes see: a pending laptop is invisible and unreachable until approved,
// then reachable; a renamed node shows under its new name; an expired one
// shows expired; a deleted one leaves its peers' status. Everything was
// audited, and the audit log, the approval and the new name survive a
// restart of the server.
func TestNodesAPIWithRealClients(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg, state := nodesConfig(t), t.TempDir()
	srv := startServer(t, cfg, state)
	base := srv.URL() + "/api/v1"
	web1 := testkit.StartTSNet(t, ctx, testkit.TSNet{ControlURL: srv.URL(), Hostname: "web1", AuthKey: serverKey})
	web2 := testkit.StartTSNet(t, ctx, testkit.TSNet{ControlURL: srv.URL(), Hostname: "web2", AuthKey: serverKey})
	laptop := testkit.StartTSNet(t, ctx, testkit.TSNet{ControlURL: srv.URL(), Hostname: "laptop", AuthKey: laptopKey, NoWait: true})
	ln, err := web1.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	testkit.Greet(t, ln, "hello from web1")
	waitPeers(t, ctx, web1, "web2")
	waitPending(t, ctx, laptop)
	web1IP, _ := web1.TailscaleIPs()
	web1Addr := net.JoinHostPort(web1IP.String(), "8080")

	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"", []string{"web1", "web2", "laptop"}},
			{"?pending=true", []string{"laptop"}},
			{"?pending=false", []string{"web1", "web2"}},
			{"?tag=tag:server", []string{"web1", "web2"}},
			{"?user=bob@example.com", []string{"laptop"}},
			{"?user=alice@example.com", nil},
			{"?expired=true", nil},
			{"?online=true&pending=false", []string{"web1", "web2"}},
		} {
			if diff := cmp.Diff(tc.want, names(t, base+"/nodes"+tc.query)); diff != "" {
				t.Errorf("GET /nodes%s (-want +got):\n%s", tc.query, diff)
			}
		}
		w1 := nodeByName(t, base, "web1")
		if w1.FQDN != "web1."+domain || w1.OS == "" || w1.ClientVersion == "" || !w1.Online || w1.User != "" ||
			!slices.Equal(w1.Tags, []string{"tag:server"}) || len(w1.Addresses) != 2 || w1.Created.IsZero() || w1.LastSeen.IsZero() {
			t.Errorf("web1 as listed: %+v", w1)
		}
	})

	laptopInfo := nodeByName(t, base, "laptop")
	lp := base + "/nodes/" + strconv.Itoa(int(laptopInfo.ID))
	t.Run("approve", func(t *testing.T) {
		if got := peers(tsStatus(t, ctx, web1)); slices.Contains(got, "laptop") {
			t.Errorf("web1 sees the pending laptop: %v", got)
		}
		if got, err := testkit.ReadGreeting(ctx, laptop, web1Addr); err == nil {
			t.Errorf("the pending laptop reached web1 (%q)", got)
		}
		if code, _, body := do(t, "POST", lp+"/approve", roKey, nil); code != http.StatusForbidden {
			t.Errorf("approve with the read key: %d %s", code, body)
		}
		code, _, body := do(t, "POST", lp+"/approve", rwKey, nil)
		if code != http.StatusOK || !strings.Contains(string(body), `"pendingApproval": false`) {
			t.Fatalf("approve: %d %s", code, body)
		}
		waitPeers(t, ctx, web1, "laptop", "web2")
		var got string
		testkit.WaitFor(t, ctx, "the approved laptop to reach web1", func() (bool, string) {
			var err error
			got, err = testkit.ReadGreeting(ctx, laptop, web1Addr)
			return err == nil, fmt.Sprint(err)
		})
		if got != "hello from web1" {
			t.Errorf("the laptop read %q from web1", got)
		}
		if code, _, body := do(t, "POST", lp+"/approve", rwKey, nil); code != http.StatusConflict {
			t.Errorf("approving again: %d %s, want 409", code, body)
		}
	})

	w2 := base + "/nodes/" + strconv.Itoa(int(nodeByName(t, base, "web2").ID))
	t.Run("rename", func(t *testing.T) {
		if code, _, body := do(t, "POST", w2+"/rename", rwKey, map[string]string{"name": "web1"}); code != http.StatusConflict {
			t.Errorf("rename to web1's name: %d %s, want 409", code, body)
		}
		if code, _, body := do(t, "POST", w2+"/rename", rwKey, map[string]string{"name": "Web 2!"}); code != http.StatusBadRequest {
			t.Errorf("rename to a non-label: %d %s, want 400", code, body)
		}
		if code, _, body := do(t, "POST", w2+"/rename", rwKey, map[string]string{"name": "db"}); code != http.StatusOK {
			t.Fatalf("rename: %d %s", code, body)
		}
		waitPeers(t, ctx, web1, "db", "laptop")
	})

	t.Run("expire", func(t *testing.T) {
		if code, _, body := do(t, "POST", w2+"/expire", rwKey, nil); code != http.StatusOK || !strings.Contains(string(body), `"expired": true`) {
			t.Fatalf("expire: %d %s", code, body)
		}
		waitPeers(t, ctx, web1, "db (expired)", "laptop")
		testkit.WaitFor(t, ctx, "the expired node to need a login", func() (bool, string) {
			st := tsStatus(t, ctx, web2)
			return st.BackendState == "NeedsLogin", st.BackendState
		})
		if diff := cmp.Diff([]string{"db"}, names(t, base+"/nodes?expired=true")); diff != "" {
			t.Errorf("GET /nodes?expired=true (-want +got):\n%s", diff)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if code, _, body := do(t, "DELETE", w2, rwKey, nil); code != http.StatusOK {
			t.Fatalf("delete: %d %s", code, body)
		}
		waitPeers(t, ctx, web1, "laptop")
		if code, _, _ := do(t, "GET", w2, roKey, nil); code != http.StatusNotFound {
			t.Errorf("GET of the deleted node: %d, want 404", code)
		}
	})

	t.Run("users", func(t *testing.T) {
		var users []admin.User
		getJSON(t, base+"/users", &users)
		want := []admin.User{
			{Login: "alice@example.com", Name: "Alice", Role: "owner"},
			{Login: "bob@example.com", Name: "Bob", Role: "member", Devices: 1, Online: 1},
		}
		if diff := cmp.Diff(want, users); diff != "" {
			t.Errorf("GET /users (-want +got):\n%s", diff)
		}
	})

	lid, wid := strconv.Itoa(int(laptopInfo.ID)), w2[strings.LastIndex(w2, "/")+1:]
	wantLog := []string{
		"apikey:rw approve node laptop (" + lid + "): ok",
		"apikey:rw approve node laptop (" + lid + "): " + control.ErrNotPending.Error(),
		"apikey:rw rename node web2 (" + wid + `) to "web1": ` + control.ErrNameTaken.Error(),
		"apikey:rw rename node web2 (" + wid + `) to "Web 2!": ` + control.ErrInvalidName.Error(),
		"apikey:rw rename node web2 (" + wid + `) to "db": ok`,
		"apikey:rw expire node db (" + wid + "): ok",
		"apikey:rw delete node db (" + wid + "): ok",
	}
	checkAudit := func(t *testing.T) {
		var log []admin.AuditEntry
		getJSON(t, base+"/audit", &log)
		var got []string
		for _, e := range log {
			result := e.Result
			for _, known := range []error{control.ErrNotPending, control.ErrNameTaken, control.ErrInvalidName} {
				if strings.Contains(result, known.Error()) {
					result = known.Error() // the rest names the node and gives a hint
				}
			}
			got = append(got, e.Who+" "+e.What+": "+result)
			if e.At.IsZero() || time.Since(e.At) > time.Hour {
				t.Errorf("audit entry %d has time %v", e.ID, e.At)
			}
		}
		slices.Reverse(got)
		if diff := cmp.Diff(wantLog, got); diff != "" {
			t.Errorf("audit log (-want +got):\n%s", diff)
		}
	}
	t.Run("audit", checkAudit)

	t.Run("after-restart", func(t *testing.T) {
		srv.Close()
		srv = startServer(t, cfg, state)
		base = srv.URL() + "/api/v1"
		checkAudit(t)
		if l := nodeByName(t, base, "laptop"); l.PendingApproval {
			t.Errorf("the approved laptop is pending again after a restart")
		}
		if diff := cmp.Diff([]string{"web1", "laptop"}, names(t, base+"/nodes")); diff != "" {
			t.Errorf("nodes after a restart (-want +got):\n%s", diff)
		}
	})
}
