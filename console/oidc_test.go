package console_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tailplane/tailplane/internal/logintest"
)

// TestConsoleOIDC signs in to the console of a whole server (login.oidc
// declared, serve's client secret) through a real OpenID provider in
// headless Chromium: bob, a member, sees only his laptop and no admin
// pages or actions; alice, the owner, lands on the page she asked for,
// sees every node and the actions; a
// person who is not a declared user, and one whose email the provider has
// not verified, are refused.
func TestConsoleOIDC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	p := logintest.StartProvider(t, "", map[string]logintest.User{
		"alice": {Password: "alice-pw", Email: "alice@example.com", Verified: true},
		"bob":   {Password: "bob-pw", Email: "bob@example.com", Verified: true},
		"eve":   {Password: "eve-pw", Email: "eve@example.com", Verified: true},
		"unver": {Password: "unver-pw", Email: "bob@example.com", Verified: false},
	})
	tn := startTailnet(t, ctx, p)
	base := tn.srv.URL()
	b := logintest.NewBrowser(t)

	signIn := func(user, password string, landed chromedp.Action[chromedp.Void]) {
		t.Helper()
		b.Do("going to the provider", chromedp.Navigate(base+"/admin/"), chromedp.Click(chromedp.ID("oidc")))
		providerForm(b, user, password, landed)
	}
	signOut := func() {
		t.Helper()
		b.Do("signing out", chromedp.Click(chromedp.CSS("form.who button")), chromedp.WaitVisible(chromedp.ID("key")))
	}

	b.Do("the sign-in page", chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(chromedp.ID("oidc")))
	b.Screens("01-signin-oidc")
	signIn("bob", "bob-pw", chromedp.WaitVisible(chromedp.ID("nodes")))
	if got := b.Query("#viewer"); got != "bob@example.com (member)" {
		t.Errorf("signed in as %q", got)
	}
	if got := b.Eval(`[...document.querySelectorAll("#nodes tr[data-node]")].map(r => r.dataset.node).join(",")`); got != "laptop" {
		t.Errorf("bob's nodes page lists %q, want his laptop only", got)
	}
	if nav := b.Query("nav"); strings.Contains(nav, "Audit") || strings.Contains(nav, "Revisions") {
		t.Errorf("bob's navigation offers admin pages: %q", nav)
	}
	b.Screens("02-member-nodes")
	b.Do("bob's laptop", chromedp.Click(chromedp.CSS(`tr[data-node="laptop"] a`)), chromedp.WaitVisible(chromedp.ID("node-name")))
	if got := b.Eval(`String(document.querySelector("#expire, #delete, #rename") === null)`); got != "true" {
		t.Errorf("bob is offered node actions")
	}
	b.Screens("03-member-node")
	signOut()

	b.Do("a page before sign-in", chromedp.Navigate(base+"/admin/users"), chromedp.Click(chromedp.ID("oidc")))
	providerForm(b, "alice", "alice-pw", chromedp.WaitVisible(chromedp.ID("users")))
	b.Do("the nodes", chromedp.Navigate(base+"/admin/nodes"), chromedp.WaitVisible(chromedp.ID("nodes")))
	if got := b.Query("#viewer"); got != "alice@example.com (owner)" {
		t.Errorf("signed in as %q", got)
	}
	if got := b.Eval(`[...document.querySelectorAll("#nodes tr[data-node]")].map(r => r.dataset.node).join(",")`); got != "web1,web2,laptop,tablet,toaster" {
		t.Errorf("alice's nodes page lists %q, want every node", got)
	}
	b.Do("web1 as alice", chromedp.Click(chromedp.CSS(`tr[data-node="web1"] a`)), chromedp.WaitVisible(chromedp.ID("expire")))
	signOut()

	for _, tc := range []struct{ user, want string }{
		{"eve", "not declared under users"},
		{"unver", "has not verified"},
	} {
		signIn(tc.user, tc.user+"-pw", chromedp.WaitVisible(chromedp.ID("problem")))
		if got := b.Query("#message"); !strings.Contains(got, tc.want) {
			t.Errorf("%s's sign-in: %q, want it to say %q", tc.user, got, tc.want)
		}
		b.Screens("04-refused-" + tc.user)
	}
}

// providerForm fills the test provider's sign-in form and waits for the
// page landed says.
func providerForm(b *logintest.Browser, user, password string, landed chromedp.Action[chromedp.Void]) {
	b.Do("signing in at the provider as "+user, chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user), chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("submit")), landed)
}
