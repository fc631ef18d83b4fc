package login

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tailplane/tailplane/internal/logintest"
)

// bob is a second declared user at the provider, who signs in to alice's
// check.
func init() {
	testUsers["bob"] = logintest.User{Password: "bob-pw", Email: "bob@example.com", Verified: true}
}

// TestCheckOIDC: a check (StartCheck) is completed only by its user.
// Signing in as another declared user shows a refusal and leaves the
// check open; signing in as the user then passes it.
func TestCheckOIDC(t *testing.T) {
	e := newEnv(t, true)
	b := logintest.NewBrowser(t)
	p := startCheck(t, e.m, "mkey:server", "alice@example.com")
	if p.User != "alice@example.com" {
		t.Errorf("Pending.User = %q, want alice@example.com", p.User)
	}
	b.Open(p.URL)
	if got := b.SignIn("bob", "bob-pw"); got != "Signed in as the wrong user" {
		t.Fatalf("signed in as bob: page %q: %s", got, b.Text("message"))
	}
	if msg := b.Text("message"); !strings.Contains(msg, "alice@example.com") || !strings.Contains(msg, "bob@example.com") {
		t.Errorf("refusal %q does not name both users", msg)
	}
	if r, ok := completed(e.m, p); ok {
		t.Fatalf("bob completed alice's check: %v", r)
	}
	b.Open(p.URL)
	if got := b.SignIn("alice", "alice-pw"); got != "Check passed" {
		t.Fatalf("signed in as alice: page %q: %s", got, b.Text("message"))
	}
	r, err := e.m.Wait(context.Background(), p.ID, "mkey:server")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Result{User: "alice@example.com", Via: "oidc"}, r); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if !strings.Contains(e.logs(), "refused bob@example.com: the check is for alice@example.com") {
		t.Errorf("log does not record the refusal:\n%s", e.logs())
	}
}

// TestCheckApprove: without a provider the check's page names its user in
// the admin's command, and approving it as anyone else fails.
func TestCheckApprove(t *testing.T) {
	e := newEnv(t, false)
	b := logintest.NewBrowser(t)
	p := startCheck(t, e.m, "mkey:server", "alice@example.com")
	if got := b.Open(p.URL); got != "Waiting for an admin" {
		t.Fatalf("page %q", got)
	}
	if got, want := b.Text("command"), "tailplane logins approve "+p.ID+" --user alice@example.com"; got != want {
		t.Errorf("command on page %q, want %q", got, want)
	}
	ctx := context.Background()
	if err := e.m.Approve(ctx, p.ID, "bob@example.com"); !errors.Is(err, ErrWrongUser) {
		t.Errorf("approving alice's check as bob: %v, want ErrWrongUser", err)
	}
	if _, ok := completed(e.m, p); ok {
		t.Fatal("a refused approval completed the check")
	}
	if err := e.m.Approve(ctx, p.ID, "Alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if r, ok := completed(e.m, p); !ok || r.User != "alice@example.com" {
		t.Errorf("after approval: %v, %v; want completed as alice@example.com", r, ok)
	}
}

// startCheck starts a check for user, waited for by machine; a failure
// fails t.
func startCheck(t *testing.T, m *Manager, machine, user string) Pending {
	t.Helper()
	p, err := m.StartCheck(context.Background(), machine, user, machine, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
