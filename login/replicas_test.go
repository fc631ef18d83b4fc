package login

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tailplane/tailplane/internal/logintest"
	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

// TestLoginAcrossReplicas: two Managers on one PostgreSQL database, as
// two replicas have them. A login started on A is signed in to at the
// provider through B (the browser's every request reaches B), and the
// Wait on A returns it without being told (no Changed: a notification
// lost on the way), by reading the store again every Poll. An admin's
// approval on A of a login started on B reaches B's Wait, and the cap of
// open logins per machine holds across both.
func TestLoginAcrossReplicas(t *testing.T) {
	pg := testkit.NewPostgres(t)
	url := pg.NewDatabase(t)
	var b *Manager
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { b.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	prov := logintest.StartProvider(t, srv.URL+"/login/callback", testUsers)
	oidcCfg := &schema.OIDC{Issuer: prov.URL, ClientID: prov.ClientID, Scopes: []string{"openid", "email"}, EmailClaim: "email"}
	replica := func(oidc *schema.OIDC) *Manager {
		st, err := store.OpenPostgres(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		m, err := New(context.Background(), Config{BaseURL: srv.URL, LookupUser: lookup, Store: st, OIDC: oidc,
			ClientSecret: prov.ClientSecret, Poll: 200 * time.Millisecond, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a := replica(oidcCfg)
	b = replica(oidcCfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	p := start(t, a, "mkey:laptop")
	done := make(chan error, 1)
	var got Result
	go func() {
		var err error
		got, err = a.Wait(ctx, p.ID, p.Machine)
		done <- err
	}()
	br := logintest.NewBrowser(t)
	br.Open(p.URL)
	if page := br.SignIn("alice", "alice-pw"); page != "You're connected" {
		t.Fatalf("signing in through B: page %q: %s", page, br.Text("message"))
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait on A: %v", err)
	}
	if diff := cmp.Diff(Result{User: "alice@example.com", Via: "oidc"}, got); diff != "" {
		t.Errorf("result on A (-want +got):\n%s", diff)
	}

	q := start(t, b, "mkey:desktop")
	go func() {
		var err error
		got, err = b.Wait(ctx, q.ID, q.Machine)
		done <- err
	}()
	if err := a.Approve(ctx, displayID(q.ID), "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || got != (Result{User: "bob@example.com", Via: "admin"}) {
		t.Errorf("Wait on B for A's approval: %v, %v", got, err)
	}

	capHoldsAcross(t, ctx, a, b)
}

// capHoldsAcross starts 4 logins of one machine, by turns on a and b,
// with the cap of 3: the oldest is canceled, the newest open.
func capHoldsAcross(t *testing.T, ctx context.Context, a, b *Manager) {
	t.Helper()
	var opened []Pending
	for i := range 4 {
		m := []*Manager{a, b}[i%2]
		r, err := m.Start(ctx, "mkey:tablet", StartOptions{MaxOpen: 3})
		if err != nil {
			t.Fatal(err)
		}
		opened = append(opened, r)
	}
	// The fourth canceled the oldest (of logins started in one
	// millisecond, either counts as the oldest).
	open := map[string]bool{}
	for _, l := range list(t, a) {
		if l.Machine == "mkey:tablet" {
			open[l.ID] = true
		}
	}
	if len(open) != 3 || !open[opened[3].ID] {
		t.Errorf("open logins of one machine %v, want 3 with the newest %s", open, opened[3].ID)
	}
	for _, o := range opened {
		if !open[o.ID] {
			if _, err := b.Wait(ctx, o.ID, "mkey:tablet"); !errors.Is(err, ErrCanceled) {
				t.Errorf("Wait for the replaced login: %v, want ErrCanceled", err)
			}
		}
	}
}

// TestStoreHoldsNoSecret: what the store keeps of a login and its
// sign-in in progress holds none of its secrets: not the login URL's
// token, not the OIDC state, nonce or PKCE verifier.
func TestStoreHoldsNoSecret(t *testing.T) {
	e := newEnv(t, true)
	p := start(t, e.m, "mkey:a")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var s SignIn
	for _, c := range resp.Cookies() {
		if c.Name == stateCookie {
			s, _ = DecodeSignIn(c.Value)
		}
	}
	if s.State == "" || !strings.Contains(resp.Header.Get("Location"), s.State) {
		t.Fatalf("login URL answered %s without a sign-in cookie and redirect", resp.Status)
	}
	var dump bytes.Buffer
	if err := e.m.st.Dump(context.Background(), &dump); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dump.String(), p.ID) {
		t.Fatalf("the dump does not hold the login at all:\n%s", dump.String())
	}
	token := p.URL[strings.LastIndex(p.URL, "/")+1:]
	for what, secret := range map[string]string{"token": token, "state": s.State, "nonce": s.Nonce, "verifier": s.Verifier} {
		if strings.Contains(dump.String(), secret) {
			t.Errorf("the store holds the %s in plain form", what)
		}
	}
}
