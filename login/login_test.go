package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tailplane/tailplane/internal/logintest"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

var declared = map[string]bool{"alice@example.com": true, "bob@example.com": true, "dave@example.com": true}

func lookup(_ context.Context, login string) (string, bool) {
	l := strings.ToLower(login)
	return l, declared[l]
}

var testUsers = map[string]logintest.User{
	"alice": {Password: "alice-pw", Email: "alice@example.com", Verified: true},
	"carol": {Password: "carol-pw", Email: "carol@example.com", Verified: true}, // not declared
	"dave":  {Password: "dave-pw", Email: "dave@example.com", Verified: false},
}

// clock is a settable clock for expiry.
type clock struct {
	mu     sync.Mutex // guards the fields below
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// env is a tailplane login server with a real provider and a log.
type env struct {
	m     *Manager
	url   string
	prov  *logintest.Provider
	clock *clock
	mu    sync.Mutex // guards log
	log   []string
}

func (e *env) logs() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.log, "\n")
}

func newEnv(t *testing.T, withOIDC bool) *env {
	t.Helper()
	e := &env{clock: &clock{}}
	var h http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	cfg := Config{BaseURL: srv.URL, LookupUser: lookup, UsersFile: "users.hujson", Now: e.clock.Now, Store: testStore(t),
		Logf: func(f string, a ...any) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.log = append(e.log, fmt.Sprintf(f, a...))
		}}
	if withOIDC {
		e.prov = logintest.StartProvider(t, srv.URL+"/login/callback", testUsers)
		cfg.OIDC = &schema.OIDC{Issuer: e.prov.URL, ClientID: e.prov.ClientID, Scopes: []string{"openid", "email"}, EmailClaim: "email"}
		cfg.ClientSecret = e.prov.ClientSecret
	}
	m, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	h = m
	return e
}

// testStore is a fresh SQLite store for one test.
func testStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// start starts a login for machine; a failure fails t.
func start(t *testing.T, m *Manager, machine string) Pending {
	t.Helper()
	p, err := m.Start(context.Background(), machine, StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// list is m.List; a failure fails t.
func list(t *testing.T, m *Manager) []Pending {
	t.Helper()
	ps, err := m.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// completed returns the login's result if it completed, without waiting.
func completed(m *Manager, p Pending) (Result, bool) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, err := m.Wait(ctx, p.ID, p.Machine)
	return r, err == nil
}

func TestOIDCLoginDeclaredUser(t *testing.T) {
	e := newEnv(t, true)
	b := logintest.NewBrowser(t)
	p := start(t, e.m, "mkey:laptop")
	b.Open(p.URL)
	if got := b.SignIn("alice", "alice-pw"); got != "You're connected" {
		t.Fatalf("landed on %q: %s", got, b.Text("message"))
	}
	r, err := e.m.Wait(context.Background(), p.ID, p.Machine)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Result{User: "alice@example.com", Via: "oidc"}, r); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	callback, err := url.Parse(b.Location())
	if err != nil {
		t.Fatal(err)
	}
	code, state := callback.Query().Get("code"), callback.Query().Get("state")
	if code == "" || state == "" {
		t.Fatalf("callback URL %s has no code or state", callback.Redacted())
	}
	for _, secret := range []string{code, state, p.URL[strings.LastIndex(p.URL, "/")+1:]} {
		if strings.Contains(e.logs(), secret) {
			t.Errorf("log contains a code, state or login token:\n%s", e.logs())
		}
	}
	// The URL is single-use, and replaying the callback completes nothing.
	if got := b.Open(p.URL); got != pageUnknown.Title {
		t.Errorf("reused login URL: page %q, want %q", got, pageUnknown.Title)
	}
	other := start(t, e.m, "mkey:other")
	b.Open(other.URL) // a fresh flow with its own cookie
	if got := b.Open(callback.String()); got != pageBadState.Title {
		t.Errorf("replayed callback: page %q, want %q", got, pageBadState.Title)
	}
	if r, ok := completed(e.m, other); ok {
		t.Errorf("replayed callback completed another login as %v", r)
	}
}

func TestOIDCLoginRefused(t *testing.T) {
	tests := []struct {
		name, user, password string
		title, text          string
	}{
		{"undeclared user", "carol", "carol-pw", "Not a member of this tailnet", "users key in users.hujson"},
		{"email not verified", "dave", "dave-pw", "Email not verified", "dave@example.com"},
	}
	e := newEnv(t, true)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := logintest.NewBrowser(t)
			p := start(t, e.m, "mkey:"+tt.user)
			b.Open(p.URL)
			if got := b.SignIn(tt.user, tt.password); got != tt.title {
				t.Fatalf("page %q, want %q", got, tt.title)
			}
			if hint := b.Text("hint") + b.Text("message"); !strings.Contains(hint, tt.text) {
				t.Errorf("page says %q, want it to mention %q", hint, tt.text)
			}
			if r, ok := completed(e.m, p); ok {
				t.Errorf("refused login completed as %v", r)
			}
		})
	}
}

func TestOIDCLoginBadCallbacks(t *testing.T) {
	e := newEnv(t, true)
	t.Run("forged state", func(t *testing.T) {
		b := logintest.NewBrowser(t)
		p := start(t, e.m, "mkey:a")
		b.Open(p.URL)
		if got := b.Open(e.url + "/login/callback?code=forged&state=" + randomString(20)); got != pageBadState.Title {
			t.Errorf("page %q, want %q", got, pageBadState.Title)
		}
		if _, ok := completed(e.m, p); ok {
			t.Error("forged state completed the login")
		}
	})
	t.Run("wrong nonce", func(t *testing.T) {
		b := logintest.NewBrowser(t)
		p := start(t, e.m, "mkey:a")
		b.Open(p.URL)
		e.prov.TamperNonces("not-the-nonce-tailplane-sent")
		if got := b.SignIn("alice", "alice-pw"); got != "Sign-in not accepted" || !strings.Contains(b.Text("message"), "nonce") {
			t.Errorf("page %q: %q, want a nonce mismatch", got, b.Text("message"))
		}
		if _, ok := completed(e.m, p); ok {
			t.Error("wrong nonce completed the login")
		}
	})
	t.Run("another machine's login", func(t *testing.T) {
		b := logintest.NewBrowser(t)
		mine, theirs := start(t, e.m, "mkey:victim"), start(t, e.m, "mkey:attacker")
		// The attacker starts their login and sends the provider link on.
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noRedirect.Get(theirs.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		lure := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || lure == "" {
			t.Fatalf("login URL answered %s without a redirect", resp.Status)
		}
		b.Open(mine.URL) // the victim's own login sets this browser's cookie
		b.Open(lure)
		if got := b.SignIn("alice", "alice-pw"); got != pageBadState.Title {
			t.Errorf("page %q, want %q", got, pageBadState.Title)
		}
		for _, p := range []Pending{mine, theirs} {
			if r, ok := completed(e.m, p); ok {
				t.Errorf("login of %s completed as %v", p.Machine, r)
			}
		}
		if _, err := e.m.Wait(context.Background(), mine.ID, theirs.Machine); !errors.Is(err, ErrWrongMachine) {
			t.Errorf("Wait by another machine: %v, want ErrWrongMachine", err)
		}
	})
	t.Run("expired login URL", func(t *testing.T) {
		b := logintest.NewBrowser(t)
		p := start(t, e.m, "mkey:a")
		e.clock.advance(DefaultTTL + time.Second)
		if got := b.Open(p.URL); got != pageExpired.Title {
			t.Errorf("page %q, want %q", got, pageExpired.Title)
		}
		if _, err := e.m.Wait(context.Background(), p.ID, p.Machine); !errors.Is(err, ErrExpired) {
			t.Errorf("Wait: %v, want ErrExpired", err)
		}
	})
	t.Run("expired during sign-in", func(t *testing.T) {
		b := logintest.NewBrowser(t)
		p := start(t, e.m, "mkey:a")
		b.Open(p.URL)
		e.clock.advance(DefaultTTL + time.Second)
		if got := b.SignIn("alice", "alice-pw"); got != pageExpired.Title {
			t.Errorf("page %q, want %q", got, pageExpired.Title)
		}
		if _, ok := completed(e.m, p); ok {
			t.Error("expired login completed")
		}
	})
}

func TestApproveByID(t *testing.T) {
	e := newEnv(t, false)
	b := logintest.NewBrowser(t)
	p := start(t, e.m, "mkey:laptop")
	if got := b.Open(p.URL); got != "Waiting for an admin" {
		t.Fatalf("page %q", got)
	}
	if got, want := b.Text("code"), displayID(p.ID); got != want {
		t.Errorf("login ID on page %q, want %q", got, want)
	}
	if got, want := b.Text("command"), "tailplane logins approve "+p.ID+" --user LOGIN"; got != want {
		t.Errorf("command on page %q, want %q", got, want)
	}
	ctx := context.Background()
	if err := e.m.Approve(ctx, b.Text("code"), "carol@example.com"); !errors.Is(err, ErrUndeclared) {
		t.Errorf("approving an undeclared user: %v, want ErrUndeclared", err)
	}
	if _, ok := completed(e.m, p); ok {
		t.Fatal("refused approval completed the login")
	}
	done := make(chan Result, 1)
	go func() {
		r, err := e.m.Wait(ctx, p.ID, p.Machine)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	if err := e.m.Approve(ctx, b.Text("code"), "Bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Result{User: "bob@example.com", Via: "admin"}, <-done); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if err := e.m.Approve(ctx, p.ID, "alice@example.com"); !errors.Is(err, ErrDone) {
		t.Errorf("approving twice: %v, want ErrDone", err)
	}
	if got := b.Open(p.URL); got != pageUnknown.Title {
		t.Errorf("used login URL: page %q, want %q", got, pageUnknown.Title)
	}
}

func TestStateCookieSecure(t *testing.T) {
	prov := logintest.StartProvider(t, "https://tp.example.com/login/callback", testUsers)
	for _, base := range []string{"https://tp.example.com", "http://127.0.0.1:1"} {
		m, err := New(context.Background(), Config{BaseURL: base, LookupUser: lookup, Store: testStore(t),
			OIDC: &schema.OIDC{Issuer: prov.URL, ClientID: prov.ClientID, Scopes: []string{"openid"}, EmailClaim: "email"}})
		if err != nil {
			t.Fatal(err)
		}
		p := start(t, m, "mkey:a")
		w := httptest.NewRecorder()
		m.ServeHTTP(w, httptest.NewRequest("GET", strings.TrimPrefix(p.URL, base), nil))
		cookies := w.Result().Cookies()
		if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].Secure != strings.HasPrefix(base, "https:") {
			t.Errorf("%s: cookies %v, want one HttpOnly cookie, Secure only over https", base, cookies)
		}
	}
}

func TestListAndCancel(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	a, err := e.m.Start(ctx, "mkey:a", StartOptions{Device: "laptop (linux)"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.advance(time.Second)
	b := start(t, e.m, "mkey:b")
	want := []Pending{
		{ID: a.ID, Machine: "mkey:a", Device: "laptop (linux)", Started: a.Started, Expires: a.Expires},
		{ID: b.ID, Machine: "mkey:b", Started: b.Started, Expires: b.Expires},
	}
	if diff := cmp.Diff(want, list(t, e.m)); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if err := e.m.Cancel(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Wait(context.Background(), a.ID, a.Machine); !errors.Is(err, ErrCanceled) {
		t.Errorf("Wait for a canceled login: %v, want ErrCanceled", err)
	}
	if err := e.m.Approve(context.Background(), a.ID, "alice@example.com"); !errors.Is(err, ErrCanceled) {
		t.Errorf("Approve of a canceled login: %v, want ErrCanceled", err)
	}
	res, err := http.Get(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("canceled login's URL answered %s, want 404", res.Status)
	}
	if diff := cmp.Diff(want[1:], list(t, e.m)); diff != "" {
		t.Errorf("List after Cancel (-want +got):\n%s", diff)
	}
	e.clock.advance(DefaultTTL)
	if got := list(t, e.m); len(got) != 0 {
		t.Errorf("List after expiry: %v, want none", got)
	}
}

// A newly applied login.oidc takes effect for the next login page, and an
// unreachable provider gets its own page until it answers.
func TestSetOIDC(t *testing.T) {
	e := newEnv(t, false)
	b := logintest.NewBrowser(t)
	ctx := context.Background()
	if got := b.Open(start(t, e.m, "mkey:a").URL); got != "Waiting for an admin" {
		t.Fatalf("without a provider: page %q", got)
	}
	prov := logintest.StartProvider(t, e.url+"/login/callback", testUsers)
	e.m.cfg.ClientSecret = prov.ClientSecret
	oidcCfg := &schema.OIDC{Issuer: prov.URL, ClientID: prov.ClientID, Scopes: []string{"openid", "email"}, EmailClaim: "email"}
	if err := e.m.SetOIDC(ctx, oidcCfg); err != nil {
		t.Fatal(err)
	}
	p := start(t, e.m, "mkey:a")
	b.Open(p.URL)
	if got := b.SignIn("alice", "alice-pw"); got != "You're connected" {
		t.Fatalf("after SetOIDC: landed on %q", got)
	}
	if r, ok := completed(e.m, p); !ok || r.Via != "oidc" {
		t.Errorf("login after SetOIDC: %v, %v; want completed via oidc", r, ok)
	}
	down := &schema.OIDC{Issuer: "http://127.0.0.1:1", ClientID: "x", Scopes: []string{"openid"}, EmailClaim: "email"}
	if err := e.m.SetOIDC(ctx, down); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("SetOIDC of an unreachable provider: %v, want an error naming it", err)
	}
	if got := b.Open(start(t, e.m, "mkey:a").URL); got != pageNoProvider.Title {
		t.Errorf("unreachable provider: page %q, want %q", got, pageNoProvider.Title)
	}
	if err := e.m.SetOIDC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := b.Open(start(t, e.m, "mkey:a").URL); got != "Waiting for an admin" {
		t.Errorf("after SetOIDC(nil): page %q", got)
	}
}
