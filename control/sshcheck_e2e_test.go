package control

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/logintest"
	"github.com/tailplane/tailplane/internal/tailscaled"
	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/login"
	"github.com/tailplane/tailplane/schema"
)

// startCheckLogin serves a login.Manager on its own httptest server, with
// a real OpenID provider that knows alice and bob (both declared in
// testTailnet).
func startCheckLogin(t *testing.T, tn *schema.Tailnet) (*login.Manager, string) {
	t.Helper()
	var h http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	prov := logintest.StartProvider(t, srv.URL+"/login/callback", map[string]logintest.User{
		"alice": {Password: "alice-pw", Email: "alice@example.com", Verified: true},
		"bob":   {Password: "bob-pw", Email: "bob@example.com", Verified: true},
	})
	m, err := login.New(context.Background(), login.Config{
		BaseURL: srv.URL, ClientSecret: prov.ClientSecret, Logf: t.Logf, Store: loginStore(t),
		OIDC: &schema.OIDC{Issuer: prov.URL, ClientID: prov.ClientID, Scopes: []string{"openid", "email"}, EmailClaim: "email"},
		LookupUser: func(_ context.Context, l string) (string, bool) {
			_, ok := tn.Users[strings.ToLower(l)]
			return strings.ToLower(l), ok
		}})
	if err != nil {
		t.Fatal(err)
	}
	h = m
	return m, srv.URL
}

// sshPair starts the server on tn (mod, if not nil, changes its Config)
// and two tailscaleds of alice's, alpha and beta, beta running Tailscale
// SSH, and waits until alpha knows beta's SSH host keys.
func sshPair(t *testing.T, tn *schema.Tailnet, mod func(*Config)) (run *e2eRun, bins *tailscaled.Binaries, alpha, beta *tailscaled.Node) {
	t.Helper()
	bins = testkit.TailscaledBinaries(t, "")
	ts := startServerWith(t, tn, "", mod)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	run = &e2eRun{ctx: ctx, root: t.TempDir(), url: ts.URL}
	alpha = run.join(t, bins, "alpha")
	beta = run.join(t, bins, "beta")
	if out, err := beta.Tailscale(ctx, "up", "--ssh", "--login-server="+run.url, "--hostname=beta"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	testkit.WaitSSHHostKeys(t, ctx, alpha, "beta.tail.test.")
	return run, bins, alpha, beta
}

// TestSSHCheckTailscaled: under an SSH "check" rule a real `tailscale ssh`
// prints a login URL and waits; in a real browser, bob's login is refused
// and the source's owner, alice, passes the check; then the command runs.
// A second ssh within the checkPeriod runs without a prompt, and a tagged
// source is refused with the server's message.
func TestSSHCheckTailscaled(t *testing.T) {
	me := sshUser(t)
	tn := testTailnet()
	tn.Settings.SSH = true
	tn.Policy.SSH = []schema.SSHRule{{Action: "check", Src: []string{"alice@example.com", "tag:server"}, Dst: []string{"alice@example.com"}, Users: []string{me.Username}}}
	lm, loginURL := startCheckLogin(t, tn)
	b := logintest.NewBrowser(t)
	run, bins, alpha, beta := sshPair(t, tn, func(c *Config) { c.Login = lm })
	ctx := run.ctx
	home := t.TempDir()
	target := me.Username + "@beta"

	var out testkit.LogBuffer
	cmd := cliCmd(ctx, bins, alpha, home, "ssh", target, "echo", "session-ran")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	urlRE := regexp.MustCompile(`(` + regexp.QuoteMeta(loginURL) + `/login/[A-Z2-7]+)\r?\n`) // whole: the line ended
	testkit.WaitFor(t, ctx, "tailscale ssh to print a login URL", func() (bool, string) {
		return urlRE.MatchString(out.String()), out.String()
	})
	if strings.Contains(out.String(), "session-ran") {
		t.Fatalf("the command ran before the check: %q", out.String())
	}
	t.Logf("tailscale ssh printed:\n%s", out.String())
	link := urlRE.FindStringSubmatch(out.String())[1]

	b.Open(link)
	if got := b.SignIn("bob", "bob-pw"); got != "Signed in as the wrong user" {
		t.Errorf("bob signing in to alice's check: page %q: %s", got, b.Text("message"))
	}
	b.Open(link)
	if got := b.SignIn("alice", "alice-pw"); got != "Check passed" {
		t.Fatalf("alice signing in: page %q: %s", got, b.Text("message"))
	}
	select {
	case err := <-exited:
		if err != nil || !strings.Contains(out.String(), "session-ran") {
			t.Fatalf("tailscale ssh after the check: %v\n%s", err, out.String())
		}
		for _, want := range []string{"Log in as alice@example.com", "check passed as alice@example.com"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("tailscale ssh printed %q, want it to say %q", out.String(), want)
			}
		}
	case <-ctx.Done():
		t.Fatalf("tailscale ssh still waits after the check:\n%s", out.String())
	}

	t.Run("second-ssh-not-prompted", func(t *testing.T) {
		got, err := cli(ctx, bins, alpha, home, "ssh", target, "echo", "again")
		if err != nil || strings.TrimSpace(got) != "again" {
			t.Errorf("second tailscale ssh within checkPeriod: %v: %q, want just the command's output", err, got)
		}
	})

	t.Run("tagged-source-refused", func(t *testing.T) {
		gamma := testkit.StartTailscaled(t, ctx, bins, filepath.Join(run.root, "gamma"))
		if out, err := gamma.Tailscale(ctx, "up", "--login-server="+run.url, "--auth-key="+serverKey, "--hostname=gamma"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		testkit.WaitSSHHostKeys(t, ctx, gamma, "beta.tail.test.")
		st, err := statusOf(ctx, gamma)
		if err != nil || len(st.Self.TailscaleIPs) == 0 {
			t.Fatalf("gamma's status: %v, %+v", err, st)
		}
		gammaIP := `"nodeIP":"` + st.Self.TailscaleIPs[0].String() + `"`
		testkit.WaitFor(t, ctx, "beta's SSH policy to name gamma", func() (bool, string) {
			raw, err := beta.Tailscale(ctx, "debug", "netmap")
			return err == nil && strings.Contains(strings.ReplaceAll(string(raw), " ", ""), gammaIP), string(raw)
		})
		got, err := cli(ctx, bins, gamma, t.TempDir(), "ssh", target, "echo", "session-ran")
		if err == nil || strings.Contains(got, "session-ran") {
			t.Fatalf("tailscale ssh from a tagged node ran the command (err %v): %q", err, got)
		}
		if !strings.Contains(got, strings.TrimSpace(sshCheckTagged)) {
			t.Errorf("tailscale ssh from a tagged node printed %q, want the server's rejection %q", got, sshCheckTagged)
		}
	})
}
