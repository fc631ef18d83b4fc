package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/login"
	"github.com/tailplane/tailplane/policy"
	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
)

// fetchAction GETs an SSH check callback over n's Noise session, as
// tailscaled does, and decodes the action of a 200.
func (n *rawNode) fetchAction(ctx context.Context, path string) (int, *tailcfg.SSHAction) {
	n.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://unused"+path, nil)
	res, err := n.c.Do(req)
	if err != nil {
		n.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, nil
	}
	a := new(tailcfg.SSHAction)
	if err := json.Unmarshal(body, a); err != nil {
		n.t.Fatalf("GET %s: body %q is not an SSHAction: %v", path, body, err)
	}
	return res.StatusCode, a
}

// sshCheckTailnet has check rules from alice's nodes and tag:server to
// alice's nodes: 1h for root, "always" for postgres.
func sshCheckTailnet() *schema.Tailnet {
	tn := testTailnet()
	tn.Settings.SSH = true
	tn.Policy.SSH = []schema.SSHRule{
		{Action: "check", CheckPeriod: "1h", Src: []string{"alice@example.com", "tag:server"}, Dst: []string{"alice@example.com"}, Users: []string{"root"}},
		{Action: "check", CheckPeriod: "always", Src: []string{"alice@example.com"}, Dst: []string{"alice@example.com"}, Users: []string{"postgres"}},
	}
	return tn
}

// newCheckLogin is a login.Manager without a provider (an admin approves
// checks with Approve), for tn's users.
func newCheckLogin(t *testing.T, tn *schema.Tailnet, now func() time.Time) *login.Manager {
	t.Helper()
	m, err := login.New(context.Background(), login.Config{BaseURL: "https://tp.example.com", Now: now, Logf: t.Logf, Store: loginStore(t),
		LookupUser: func(_ context.Context, l string) (string, bool) {
			_, ok := tn.Users[strings.ToLower(l)]
			return strings.ToLower(l), ok
		}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkID is the login ID in the URL of a check's long poll.
func checkID(t *testing.T, a *tailcfg.SSHAction) string {
	t.Helper()
	_, rest, ok := strings.Cut(a.HoldAndDelegate, "/check/")
	id, _, _ := strings.Cut(rest, "?")
	if !ok || id == "" {
		t.Fatalf("action %+v does not delegate to a check's long poll", a)
	}
	return id
}

// TestSSHCheckCallback drives the check callback over real Noise sessions:
// only the destination's own session may fetch it, a tagged source is
// refused, the source's owner (and no one else) passes the check, a passed
// check is remembered for the rule's checkPeriod, and "always" asks every
// time.
func TestSSHCheckCallback(t *testing.T) {
	tn := sshCheckTailnet()
	clock := newTestClock(time.Now())
	lm := newCheckLogin(t, tn, clock.Now)
	ts := startServerWith(t, tn, "", func(c *Config) { c.Login = lm; c.Now = clock.Now })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	join := func(key string) (*rawNode, tailcfg.NodeID) {
		n := newRawNode(t, ts)
		if r := n.register(n.registerReq(key)); r.Error != "" {
			t.Fatalf("register: %s", r.Error)
		}
		return n, n.selfMap().Node.ID
	}
	laptop, laptopID := join(aliceKey)
	server, serverID := join(aliceKey)
	_, taggedID := join(serverKey)
	path := func(src tailcfg.NodeID, user string) string {
		return fmt.Sprintf("/machine/ssh/action/%d/to/%d?local_user=%s", src, serverID, user)
	}

	t.Run("another node's session is refused", func(t *testing.T) {
		for _, p := range []string{path(laptopID, "root"), fmt.Sprintf("/machine/ssh/action/%d/to/999?local_user=root", laptopID)} {
			if code, a := laptop.fetchAction(ctx, p); code != http.StatusForbidden {
				t.Errorf("laptop fetching %s: HTTP %d %+v, want 403", p, code, a)
			}
		}
	})
	rejects := []struct {
		name, path, msg string
	}{
		{"tagged source", path(taggedID, "root"), sshCheckTagged},
		{"no check rule", path(laptopID, "nobody"), sshCheckNoRule},
		{"unknown source", path(999, "root"), sshCheckNoSrc},
		{"placeholders", "/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=root", sshCheckBadURL},
	}
	for _, tt := range rejects {
		t.Run(tt.name, func(t *testing.T) {
			code, a := server.fetchAction(ctx, tt.path)
			if diff := cmp.Diff(&tailcfg.SSHAction{Reject: true, Message: tt.msg}, a); code != 200 || diff != "" {
				t.Errorf("HTTP %d, action (-want +got):\n%s", code, diff)
			}
		})
	}

	var id string
	t.Run("check starts", func(t *testing.T) {
		_, a := server.fetchAction(ctx, path(laptopID, "root"))
		id = checkID(t, a)
		if !strings.Contains(a.Message, "https://tp.example.com/login/") || !strings.Contains(a.Message, "alice@example.com") {
			t.Errorf("message %q does not give the login URL and the user", a.Message)
		}
		if want := fmt.Sprintf("https://unused/machine/ssh/action/%d/to/%d/check/%s?local_user=root", laptopID, serverID, id); a.HoldAndDelegate != want {
			t.Errorf("holdAndDelegate %q, want %q", a.HoldAndDelegate, want)
		}
	})
	if id == "" {
		t.FailNow()
	}
	poll := fmt.Sprintf("/machine/ssh/action/%d/to/%d/check/%s?local_user=root", laptopID, serverID, id)
	if code, _ := laptop.fetchAction(ctx, poll); code != http.StatusForbidden {
		t.Errorf("laptop polling the server's check: HTTP %d, want 403", code)
	}
	other := fmt.Sprintf("/machine/ssh/action/%d/to/%d/check/%s?local_user=root", taggedID, serverID, id)
	if code, _ := server.fetchAction(ctx, other); code != http.StatusForbidden {
		t.Errorf("the server polling the check for another source: HTTP %d, want 403", code)
	}
	got := make(chan *tailcfg.SSHAction, 1)
	go func() {
		_, a := server.fetchAction(ctx, poll)
		got <- a
	}()
	if err := lm.Approve(ctx, id, "bob@example.com"); !errors.Is(err, login.ErrWrongUser) {
		t.Errorf("approving alice's check as bob: %v, want ErrWrongUser", err)
	}
	if err := lm.Approve(ctx, id, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	want := policy.SSHAcceptAction()
	want.Message = "# tailplane: check passed as alice@example.com.\n"
	if diff := cmp.Diff(want, <-got); diff != "" {
		t.Errorf("long poll after the check (-want +got):\n%s", diff)
	}

	clock.Advance(59 * time.Minute)
	if _, a := server.fetchAction(ctx, path(laptopID, "root")); !cmp.Equal(a, policy.SSHAcceptAction()) {
		t.Errorf("within checkPeriod: %+v, want accept", a)
	}
	if _, a := server.fetchAction(ctx, path(laptopID, "postgres")); a == nil || a.HoldAndDelegate == "" {
		t.Errorf(`"always" right after a check: %+v, want a new check`, a)
	}
	clock.Advance(time.Minute)
	_, a := server.fetchAction(ctx, path(laptopID, "root"))
	if a == nil || a.HoldAndDelegate == "" {
		t.Fatalf("after checkPeriod: %+v, want a new check", a)
	}
	clock.Advance(login.DefaultTTL + time.Second)
	expired := fmt.Sprintf("/machine/ssh/action/%d/to/%d/check/%s?local_user=root", laptopID, serverID, checkID(t, a))
	if _, a := server.fetchAction(ctx, expired); !cmp.Equal(a, &tailcfg.SSHAction{Reject: true, Message: sshCheckOver}) {
		t.Errorf("polling an expired check: %+v, want the rejection %q", a, sshCheckOver)
	}
}

// TestSSHCheckLoginOff: without Config.Login every check is rejected with
// a message, rather than left to tailscaled's half-hour retries.
func TestSSHCheckLoginOff(t *testing.T) {
	ts := startServer(t, sshCheckTailnet(), "")
	n := newRawNode(t, ts)
	if r := n.register(n.registerReq(aliceKey)); r.Error != "" {
		t.Fatalf("register: %s", r.Error)
	}
	id := n.selfMap().Node.ID
	code, a := n.fetchAction(context.Background(), fmt.Sprintf("/machine/ssh/action/%d/to/%d?local_user=root", id, id))
	if diff := cmp.Diff(&tailcfg.SSHAction{Reject: true, Message: sshCheckLoginOff}, a); code != 200 || diff != "" {
		t.Errorf("HTTP %d, action (-want +got):\n%s", code, diff)
	}
}

// TestSSHCheckOpenLimit: one destination may have maxOpenSSHChecks checks
// waiting; the next is rejected with a message until one completes or
// expires.
func TestSSHCheckOpenLimit(t *testing.T) {
	tn := sshCheckTailnet()
	clock := newTestClock(time.Now())
	lm := newCheckLogin(t, tn, clock.Now)
	ts := startServerWith(t, tn, "", func(c *Config) { c.Login = lm; c.Now = clock.Now })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := newRawNode(t, ts)
	n.register(n.registerReq(aliceKey))
	id := n.selfMap().Node.ID
	path := fmt.Sprintf("/machine/ssh/action/%d/to/%d?local_user=postgres", id, id) // "always"
	var first *tailcfg.SSHAction
	for i := range maxOpenSSHChecks {
		_, a := n.fetchAction(ctx, path)
		if a == nil || a.HoldAndDelegate == "" {
			t.Fatalf("check %d: %+v, want a new check", i+1, a)
		}
		if first == nil {
			first = a
		}
	}
	busy := &tailcfg.SSHAction{Reject: true, Message: sshCheckBusy}
	if _, a := n.fetchAction(ctx, path); !cmp.Equal(a, busy) {
		t.Fatalf("check %d: %+v, want the rejection %q", maxOpenSSHChecks+1, a, sshCheckBusy)
	}
	// Completing one frees its place.
	if err := lm.Approve(ctx, checkID(t, first), "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	poll := strings.TrimPrefix(first.HoldAndDelegate, "https://unused")
	if _, a := n.fetchAction(ctx, poll); a == nil || !a.Accept {
		t.Fatalf("polling the approved check: %+v, want accept", a)
	}
	if _, a := n.fetchAction(ctx, path); a == nil || a.HoldAndDelegate == "" {
		t.Errorf("after one check completed: %+v, want a new check", a)
	}
	if _, a := n.fetchAction(ctx, path); !cmp.Equal(a, busy) {
		t.Errorf("full again: %+v, want the rejection", a)
	}
	// Expired checks free theirs.
	clock.Advance(login.DefaultTTL)
	if _, a := n.fetchAction(ctx, path); a == nil || a.HoldAndDelegate == "" {
		t.Errorf("after the checks expired: %+v, want a new check", a)
	}
}
