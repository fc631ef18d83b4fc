package control

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/login"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// startLoginServer is startServer with interactive login (no identity
// provider: tests complete logins with Approve) whose logins live ttl
// (zero: login.DefaultTTL), and mod (if not nil) applied to the Config.
func startLoginServer(t *testing.T, tn *schema.Tailnet, ttl time.Duration, mod func(*Config)) (*testServer, *login.Manager) {
	t.Helper()
	var ts *testServer
	m, err := login.New(context.Background(), login.Config{
		BaseURL: "http://tailplane.test", TTL: ttl, Logf: t.Logf, Store: loginStore(t),
		LookupUser: func(_ context.Context, l string) (string, bool) {
			_, ok := ts.Tailnet().Users[l]
			return l, ok
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts = startServerWith(t, tn, "", func(c *Config) {
		c.Login = m
		if mod != nil {
			mod(c)
		}
	})
	return ts, m
}

// loginStore is a store of its own for a test's login.Manager.
func loginStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// loginID is the login whose URL is url.
func loginID(t *testing.T, m *login.Manager, ts *testServer, url string) string {
	t.Helper()
	p, err := m.Lookup(context.Background(), url)
	if err != nil {
		t.Fatalf("no login for %s: %v", url, err)
	}
	return p.ID
}

// openLogins is m.List; a failure fails t.
func openLogins(t *testing.T, m *login.Manager) []login.Pending {
	t.Helper()
	ps, err := m.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// followup sends req again with Followup set to url, as the client does
// after printing the URL, and returns the answer when it comes.
func (n *rawNode) followup(req *tailcfg.RegisterRequest, url string) <-chan *tailcfg.RegisterResponse {
	r := *req
	r.Followup = url
	c := make(chan *tailcfg.RegisterResponse, 1)
	go func() { c <- n.register(&r) }()
	return c
}

// loginAs registers n's node key by an interactive login approved as
// user, and returns the answer and the node the store holds afterwards.
func loginAs(t *testing.T, ts *testServer, m *login.Manager, n *rawNode, req *tailcfg.RegisterRequest, user string) *tailcfg.RegisterResponse {
	t.Helper()
	first := n.register(req)
	if first.AuthURL == "" || first.Error != "" {
		t.Fatalf("keyless register: %+v, want an AuthURL", first)
	}
	done := n.followup(req, first.AuthURL)
	if err := m.Approve(context.Background(), loginID(t, m, ts, first.AuthURL), user); err != nil {
		t.Fatal(err)
	}
	return <-done
}

func TestInteractiveRegistration(t *testing.T) {
	ts, m := startLoginServer(t, testTailnet(), 0, nil)
	n := newRawNode(t, ts)
	req := n.registerReq("")
	first := n.register(req)
	if !strings.HasPrefix(first.AuthURL, "http://tailplane.test/login/") || first.MachineAuthorized || first.Error != "" {
		t.Fatalf("keyless register: %+v, want an AuthURL on tailplane's server and nothing else", first)
	}
	done := n.followup(req, first.AuthURL)
	select {
	case r := <-done:
		t.Fatalf("follow-up answered before the login completed: %+v", r)
	case <-time.After(200 * time.Millisecond): // only shows the request is held
	}
	pending := openLogins(t, m)
	if len(pending) != 1 || pending[0].Device != "raw" || pending[0].URL != "" {
		t.Fatalf("open logins %+v, want one for device raw, without its URL", pending)
	}
	if err := m.Approve(context.Background(), pending[0].ID, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	want := &tailcfg.RegisterResponse{MachineAuthorized: true,
		User:  tailcfg.User{ID: userID("bob@example.com"), DisplayName: "bob"},
		Login: tailcfg.Login{LoginName: "bob@example.com", DisplayName: "bob"}}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("follow-up answer (-want +got):\n%s", diff)
	}
	self := n.selfMap().Node
	if self.User != userID("bob@example.com") {
		t.Errorf("registered node's user %v, want bob's", self.User)
	}
	nodes := storedNodes(t, context.Background(), ts)
	if len(nodes) != 1 || nodes[0].UserLogin != "bob@example.com" || nodes[0].AuthKey != "" {
		t.Errorf("store holds %+v, want one node of bob, registered by no auth key", nodes)
	}
	if got := openLogins(t, m); len(got) != 0 {
		t.Errorf("open logins after registration: %+v", got)
	}
	// A repeated follow-up (the client lost the answer) is a refresh.
	if again := <-n.followup(req, first.AuthURL); again.Error != "" || !again.MachineAuthorized || again.AuthURL != "" {
		t.Errorf("repeated follow-up: %+v, want the registered node's refresh", again)
	}
	// Auth keys work as before beside it.
	k := newRawNode(t, ts)
	if r := k.register(k.registerReq(aliceKey)); r.Error != "" || !r.MachineAuthorized || r.AuthURL != "" {
		t.Errorf("auth key register: %+v", r)
	}
}

// Follow-ups that must not register anything.
func TestInteractiveFollowupRefused(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// follow sends the follow-up(s) and returns the answer to check.
		follow func(t *testing.T, ts *testServer, m *login.Manager, n *rawNode, req *tailcfg.RegisterRequest, url string) *tailcfg.RegisterResponse
		want   string // in the answer's Error
	}{
		{"another machine's login URL", func(t *testing.T, ts *testServer, m *login.Manager, n *rawNode, req *tailcfg.RegisterRequest, url string) *tailcfg.RegisterResponse {
			other := newRawNode(t, ts)
			if err := m.Approve(ctx, loginID(t, m, ts, url), "bob@example.com"); err != nil {
				t.Fatal(err)
			}
			return <-other.followup(other.registerReq(""), url)
		}, "given to another device"},
		{"another node key", func(t *testing.T, ts *testServer, m *login.Manager, n *rawNode, req *tailcfg.RegisterRequest, url string) *tailcfg.RegisterResponse {
			r := *req
			r.NodeKey = key.NewNode().Public()
			return <-n.followup(&r, url)
		}, "another node key"},
		{"user removed after the login", func(t *testing.T, ts *testServer, m *login.Manager, n *rawNode, req *tailcfg.RegisterRequest, url string) *tailcfg.RegisterResponse {
			if err := m.Approve(ctx, loginID(t, m, ts, url), "bob@example.com"); err != nil {
				t.Fatal(err)
			}
			tn := testTailnet()
			delete(tn.Users, "bob@example.com")
			if err := ts.SetConfig(ctx, tn); err != nil {
				t.Fatal(err)
			}
			return <-n.followup(req, url)
		}, "no longer declared under users"},
		{"replaced by newer logins", func(t *testing.T, ts *testServer, m *login.Manager, n *rawNode, req *tailcfg.RegisterRequest, url string) *tailcfg.RegisterResponse {
			for range maxLoginsPerMachine {
				r := *req
				r.NodeKey = key.NewNode().Public()
				if a := n.register(&r); a.AuthURL == "" {
					t.Fatalf("keyless register: %+v", a)
				}
			}
			if got := len(openLogins(t, m)); got != maxLoginsPerMachine {
				t.Errorf("%d open logins, want the cap of %d", got, maxLoginsPerMachine)
			}
			return <-n.followup(req, url)
		}, "replaced by a newer one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, m := startLoginServer(t, testTailnet(), 0, nil)
			n := newRawNode(t, ts)
			req := n.registerReq("")
			first := n.register(req)
			r := tt.follow(t, ts, m, n, req, first.AuthURL)
			if !strings.Contains(r.Error, tt.want) || r.MachineAuthorized {
				t.Errorf("answer %+v, want a refusal saying %q", r, tt.want)
			}
			if nodes := storedNodes(t, ctx, ts); len(nodes) != 0 {
				t.Errorf("a refused follow-up registered %s", describeNodes(nodes))
			}
		})
	}
}

// An expired login, and a URL the server does not know, get a fresh URL.
func TestInteractiveLoginFreshURL(t *testing.T) {
	ts, _ := startLoginServer(t, testTailnet(), time.Second, nil)
	n := newRawNode(t, ts)
	req := n.registerReq("")
	first := n.register(req)
	r := <-n.followup(req, first.AuthURL) // held until the login expires
	if r.Error != "" || r.AuthURL == "" || r.AuthURL == first.AuthURL {
		t.Errorf("follow-up of an expired login: %+v, want a fresh AuthURL (not %s)", r, first.AuthURL)
	}
	r = <-n.followup(req, "http://tailplane.test/login/NOTAKNOWNTOKEN")
	if r.Error != "" || !strings.HasPrefix(r.AuthURL, "http://tailplane.test/login/") {
		t.Errorf("follow-up of an unknown URL: %+v, want a fresh AuthURL", r)
	}
}

// Without Config.Login a keyless register and a follow-up are refused.
func TestInteractiveLoginOff(t *testing.T) {
	ts := startServer(t, testTailnet(), "")
	n := newRawNode(t, ts)
	req := n.registerReq("")
	if r := n.register(req); !strings.Contains(r.Error, authKeysOnly) || r.AuthURL != "" {
		t.Errorf("keyless register: %+v, want %q", r, authKeysOnly)
	}
	if r := <-n.followup(req, "http://tailplane.test/login/X"); !strings.Contains(r.Error, "interactive login is off") {
		t.Errorf("follow-up: %+v, want interactive login is off", r)
	}
}

// Re-login keeps the node's identity for the same user on the same
// machine: `--force-reauth` (a new key, OldNodeKey the current one), after
// key expiry and after logout. Another user gets a new node.
func TestInteractiveReloginKeepsIdentity(t *testing.T) {
	clock := newTestClock(time.Now())
	tn := testTailnet()
	tn.Settings.NodeKeyExpiry = time.Hour
	ts, m := startLoginServer(t, tn, 0, func(c *Config) { c.Now = clock.Now })
	n := newRawNode(t, ts)
	if r := loginAs(t, ts, m, n, n.registerReq(""), "bob@example.com"); r.Error != "" {
		t.Fatal(r.Error)
	}
	before := n.selfMap().Node
	identity := func(what string) {
		t.Helper()
		after := n.selfMap().Node
		if after.ID != before.ID || after.StableID != before.StableID || !slices.Equal(after.Addresses, before.Addresses) || after.Name != before.Name {
			t.Errorf("%s changed identity: before %v %v %v, after %v %v %v", what, before.ID, before.Addresses, before.Name, after.ID, after.Addresses, after.Name)
		}
		if after.Key != n.nk.Public() {
			t.Errorf("%s: node key %v, want the new key", what, after.Key)
		}
	}
	newKey := func() *tailcfg.RegisterRequest {
		old := n.nk
		n.nk = key.NewNode()
		req := n.registerReq("")
		req.OldNodeKey = old.Public()
		return req
	}

	if r := loginAs(t, ts, m, n, newKey(), "bob@example.com"); r.Error != "" {
		t.Fatal(r.Error)
	}
	identity("--force-reauth")

	clock.Advance(2 * time.Hour)
	if r := n.register(n.registerReq("")); !r.NodeKeyExpired || r.Error != "" || r.AuthURL != "" {
		t.Errorf("register with the expired key: %+v, want NodeKeyExpired alone (the client makes a new key)", r)
	}
	if r := loginAs(t, ts, m, n, newKey(), "bob@example.com"); r.Error != "" {
		t.Fatal(r.Error)
	}
	identity("re-login after key expiry")

	n.logout()
	n.nk = key.NewNode() // the client forgets its key on logout
	if r := loginAs(t, ts, m, n, n.registerReq(""), "bob@example.com"); r.Error != "" {
		t.Fatal(r.Error)
	}
	identity("re-login after logout")

	if r := loginAs(t, ts, m, n, newKey(), "alice@example.com"); r.Error != "" {
		t.Fatal(r.Error)
	}
	if other := n.selfMap().Node; other.ID == before.ID {
		t.Errorf("alice's login on bob's machine reused bob's node %d", before.ID)
	}
	for _, s := range storedNodes(t, context.Background(), ts) {
		if s.ID == int64(before.ID) && !s.LoggedOut {
			t.Errorf("bob's node %d stayed logged in after alice logged in on its machine", s.ID)
		}
	}
}

// TestInteractiveLoginAwaitsApproval: under tailnet.deviceApproval a node
// that joins by logging in is not preauthorized: it registers pending,
// unauthorized, until an admin approves it; without deviceApproval the
// same login is authorized at once.
func TestInteractiveLoginAwaitsApproval(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		approval bool
	}{{"approval", true}, {"no-approval", false}} {
		t.Run(tc.name, func(t *testing.T) {
			tn := testTailnet()
			tn.Settings.DeviceApproval = tc.approval
			ts, m := startLoginServer(t, tn, 0, nil)
			n := newRawNode(t, ts)
			r := loginAs(t, ts, m, n, n.registerReq(""), "bob@example.com")
			if r.Error != "" || r.MachineAuthorized == tc.approval {
				t.Fatalf("login answer %+v, want MachineAuthorized %v", r, !tc.approval)
			}
			info := nodeNamed(t, ctx, ts.Server, "raw")
			if info.PendingApproval != tc.approval || info.User != "bob@example.com" {
				t.Fatalf("listed node %+v, want bob's with PendingApproval %v", info, tc.approval)
			}
			if !tc.approval {
				return
			}
			if _, err := ts.ApproveNode(ctx, info.ID); err != nil {
				t.Fatal(err)
			}
			if info := nodeNamed(t, ctx, ts.Server, "raw"); info.PendingApproval {
				t.Errorf("after approval the node is still pending: %+v", info)
			}
			if self := n.selfMap().Node; !self.MachineAuthorized {
				t.Errorf("approved node's own view: MachineAuthorized false")
			}
		})
	}
}
