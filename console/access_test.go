package console_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/console"
	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/pipeline"
	"tailscale.com/tailcfg"
)

// client is a browser-like HTTP client of the console: it keeps cookies
// and does not follow redirects, so answers can be checked as sent.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newClient(t *testing.T, base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: base, hc: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request, a form when form is not nil, and returns the status,
// the Location and the body.
func (c *client) do(method, path string, form url.Values) (int, string, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Location"), string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf is the CSRF token of the forms on a page.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

// signIn signs c in with an API key and returns the session's CSRF token.
func (c *client) signIn(key string) string {
	c.t.Helper()
	_, _, page := c.do("GET", "/admin/signin", nil)
	code, loc, body := c.do("POST", "/admin/signin", url.Values{"csrf": {csrfOf(c.t, page)}, "key": {key}, "next": {"/admin/nodes"}})
	if code != http.StatusSeeOther || loc != "/admin/nodes" {
		c.t.Fatalf("signing in: %d to %q:\n%s", code, loc, body)
	}
	_, _, page = c.do("GET", "/admin/nodes", nil)
	return csrfOf(c.t, page)
}

// TestConsoleAccess checks over HTTP what each kind of viewer may do, on
// a server with real nodes: a member sees only its own devices and no
// admin page, and cannot act even on its own node; a read key cannot
// act; a forged or missing CSRF token is refused and changes nothing,
// and with the token an admin renames, rejects a pending node (and is
// refused rejecting an authorized one) and deletes one, all audited;
// sign-in needs the form's token; the session cookie is HttpOnly,
// SameSite=Lax and scoped to /admin/; removing a key in the config ends
// its sessions.
func TestConsoleAccess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tn := startTailnet(t, ctx, nil)
	con, err := console.New(console.Config{Control: tn.srv.Control(), Pipeline: tn.srv.Pipeline(), Store: tn.srv.Store()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(con)
	t.Cleanup(hs.Close)
	r := &accessRun{ctx: ctx, con: con, tn: tn, url: hs.URL,
		web1: "/admin/nodes/" + tn.ids["web1"], laptop: "/admin/nodes/" + tn.ids["laptop"]}
	t.Run("member", r.member)
	t.Run("read-key", r.readKey)
	t.Run("csrf", r.csrf)
	t.Run("signin", r.signIn)
	t.Run("key-removed", r.keyRemoved)
}

// accessRun is TestConsoleAccess's console on its tailnet.
type accessRun struct {
	ctx          context.Context
	con          *console.Console
	tn           *tailnet
	url          string // the console server's
	web1, laptop string // the nodes' console paths
}

// member checks what bob, a member, may see and do.
func (r *accessRun) member(t *testing.T) {
	c := newClient(t, r.url)
	ck, token := r.con.SessionCookieFor("bob@example.com")
	u, _ := url.Parse(r.url + "/admin/")
	c.hc.Jar.SetCookies(u, []*http.Cookie{ck})
	code, _, page := c.do("GET", "/admin/nodes", nil)
	if code != http.StatusOK || !strings.Contains(page, `data-node="laptop"`) || strings.Contains(page, `data-node="web1"`) {
		t.Errorf("bob's nodes page (%d) should list his laptop only:\n%s", code, page)
	}
	for _, tc := range []struct {
		method, path string
		form         url.Values
		want         int
	}{
		{"GET", r.web1, nil, http.StatusNotFound},
		{"GET", "/admin/policy?node=" + r.tn.ids["web1"], nil, http.StatusNotFound},
		{"GET", r.laptop, nil, http.StatusOK},
		{"GET", "/admin/audit", nil, http.StatusForbidden},
		{"GET", "/admin/revisions", nil, http.StatusForbidden},
		{"GET", "/admin/revisions/1", nil, http.StatusForbidden},
		{"POST", r.laptop + "/expire", url.Values{"csrf": {token}}, http.StatusForbidden},
		{"POST", r.web1 + "/delete", url.Values{"csrf": {token}}, http.StatusForbidden},
		{"POST", r.laptop + "/rename", url.Values{"csrf": {token}, "name": {"bobs"}}, http.StatusForbidden},
	} {
		if code, _, body := c.do(tc.method, tc.path, tc.form); code != tc.want {
			t.Errorf("bob: %s %s: %d, want %d:\n%s", tc.method, tc.path, code, tc.want, body)
		}
	}
	if _, _, page := c.do("GET", "/admin/users", nil); !strings.Contains(page, "bob@example.com") || strings.Contains(page, "alice@example.com") {
		t.Errorf("bob's users page should show him only:\n%s", page)
	}
}

// readKey checks that a read key sees everything and acts on nothing.
func (r *accessRun) readKey(t *testing.T) {
	c := newClient(t, r.url)
	token := c.signIn(readKey)
	if _, _, page := c.do("GET", "/admin/nodes", nil); !strings.Contains(page, `data-node="web1"`) {
		t.Errorf("the read key does not see web1:\n%s", page)
	}
	if _, _, page := c.do("GET", r.web1, nil); strings.Contains(page, `id="expire"`) {
		t.Errorf("the read key is offered actions:\n%s", page)
	}
	if code, _, body := c.do("POST", r.web1+"/expire", url.Values{"csrf": {token}}); code != http.StatusForbidden {
		t.Errorf("read key: expire: %d, want 403:\n%s", code, body)
	}
}

// csrf checks the CSRF tokens, and an admin's audited actions with one.
func (r *accessRun) csrf(t *testing.T) {
	c := newClient(t, r.url)
	token := c.signIn(adminKey)
	other := newClient(t, r.url).signIn(adminKey) // another session's token
	for _, form := range []url.Values{{}, {"csrf": {"forged"}}, {"csrf": {other}}} {
		if code, _, body := c.do("POST", r.web1+"/expire", form); code != http.StatusForbidden || !strings.Contains(body, "Request not accepted") {
			t.Errorf("expire with csrf=%q: %d, want 403:\n%s", form.Get("csrf"), code, body)
		}
	}
	if code, _, body := c.do("POST", "/admin/signout", url.Values{}); code != http.StatusForbidden {
		t.Errorf("sign-out without a token: %d, want 403:\n%s", code, body)
	}
	n, err := r.tn.srv.Control().Node(r.ctx, mustID(t, r.tn.ids["web1"]))
	if err != nil || n.Expired {
		t.Fatalf("web1 after refused requests: expired=%v, %v", n.Expired, err)
	}
	entries, err := r.tn.srv.Store().AuditEntries(r.ctx, 0)
	if err != nil || len(entries) != 0 {
		t.Errorf("refused requests were audited: %+v, %v", entries, err)
	}
	if code, loc, body := c.do("POST", r.web1+"/rename", url.Values{"csrf": {token}, "name": {"www"}}); code != http.StatusSeeOther || !strings.Contains(loc, "did=rename") {
		t.Errorf("rename with the token: %d to %q:\n%s", code, loc, body)
	}
	toaster := "/admin/nodes/" + r.tn.ids["toaster"]
	if code, loc, body := c.do("POST", toaster+"/reject", url.Values{"csrf": {token}}); code != http.StatusSeeOther || loc != "/admin/nodes?did=reject" {
		t.Errorf("reject with the token: %d to %q:\n%s", code, loc, body)
	}
	if code, _, _ := c.do("GET", toaster, nil); code != http.StatusNotFound {
		t.Errorf("the rejected toaster's page: %d, want 404", code)
	}
	if code, _, body := c.do("POST", r.web1+"/reject", url.Values{"csrf": {token}}); code != http.StatusConflict {
		t.Errorf("reject of an authorized node: %d, want 409:\n%s", code, body)
	}
	web2 := "/admin/nodes/" + r.tn.ids["web2"]
	if code, loc, body := c.do("POST", web2+"/delete", url.Values{"csrf": {token}}); code != http.StatusSeeOther || loc != "/admin/nodes?did=delete" {
		t.Errorf("delete with the token: %d to %q:\n%s", code, loc, body)
	}
	if _, err := r.tn.srv.Control().Node(r.ctx, mustID(t, r.tn.ids["web2"])); !errors.Is(err, control.ErrNodeNotFound) {
		t.Errorf("web2 after deleting it: %v, want ErrNodeNotFound", err)
	}
	entries, _ = r.tn.srv.Store().AuditEntries(r.ctx, 0)
	var got []string
	for _, e := range entries {
		result := e.Result
		if strings.Contains(result, control.ErrNotPending.Error()) {
			result = control.ErrNotPending.Error() // the rest names the node and gives a hint
		}
		got = append(got, e.Who+" "+e.What+": "+result)
	}
	want := []string{ // newest first
		"apikey:ops delete node web2 (" + r.tn.ids["web2"] + "): ok",
		"apikey:ops reject node www (" + r.tn.ids["web1"] + "): " + control.ErrNotPending.Error(),
		"apikey:ops reject node toaster (" + r.tn.ids["toaster"] + "): ok",
		"apikey:ops rename node web1 (" + r.tn.ids["web1"] + `) to "www": ok`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}
}

// signIn checks the sign-in form and the session cookie.
func (r *accessRun) signIn(t *testing.T) {
	c := newClient(t, r.url)
	if code, _, _ := c.do("POST", "/admin/signin", url.Values{"key": {adminKey}}); code != http.StatusForbidden {
		t.Errorf("sign-in without the form's token: %d, want 403", code)
	}
	_, _, page := c.do("GET", "/admin/signin", nil)
	if code, _, _ := c.do("POST", "/admin/signin", url.Values{"csrf": {csrfOf(t, page)}, "key": {"tpk-wrong"}}); code != http.StatusUnauthorized {
		t.Errorf("sign-in with an unknown key: %d, want 401", code)
	}
	if code, loc, _ := c.do("GET", "/admin/nodes", nil); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/admin/signin") {
		t.Errorf("nodes without a session: %d to %q, want the sign-in page", code, loc)
	}
	_, _, page = c.do("GET", "/admin/signin", nil)
	form := url.Values{"csrf": {csrfOf(t, page)}, "key": {adminKey}, "next": {"https://evil.example/"}}
	req, _ := http.NewRequest("POST", r.url+"/admin/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); loc != "/admin/nodes" {
		t.Errorf("sign-in with next off the console went to %q", loc)
	}
	var session *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == "tailplane_console" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/admin/" || session.Secure {
		t.Errorf("session cookie over plain loopback HTTP: %+v, want HttpOnly, SameSite=Lax, Path=/admin/, not Secure", session)
	}
}

// keyRemoved checks that a session ends when its API key is no longer
// declared: a commit removing the key signs the browser out.
func (r *accessRun) keyRemoved(t *testing.T) {
	c := newClient(t, r.url)
	c.signIn(readKey)
	ops := filepath.Join(r.tn.configDir, "ops.hujson")
	b, err := os.ReadFile(ops)
	if err != nil {
		t.Fatal(err)
	}
	without := regexp.MustCompile(`(?m)^.*"viewer".*$`).ReplaceAll(b, nil)
	if err := os.WriteFile(ops, without, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.tn.srv.Pipeline().Wait(r.ctx, func(st pipeline.Status) bool {
		_, declared := r.tn.srv.Tailnet().APIKeys["viewer"]
		return st.Attempted != nil && st.Attempted.OK && !declared
	}); err != nil {
		t.Fatalf("waiting for the config without the viewer key: %v", err)
	}
	if code, loc, _ := c.do("GET", "/admin/nodes", nil); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/admin/signin") {
		t.Errorf("the removed key's session got %d to %q, want the sign-in page", code, loc)
	}
}

// TestConsoleTransport checks which connections the console answers:
// TLS always, plain HTTP only when both ends are loopback or
// AllowHTTP says so; and that cookies are Secure over HTTPS.
func TestConsoleTransport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, _ := startServer(t, ctx, nil)
	for _, tc := range []struct {
		name          string
		local, remote string
		tls, allow    bool
		want          int
	}{
		{name: "loopback", local: "127.0.0.1:8080", remote: "127.0.0.1:5000", want: http.StatusOK},
		{name: "loopback IPv6", local: "[::1]:8080", remote: "[::1]:5000", want: http.StatusOK},
		{name: "plain HTTP off loopback", local: "192.0.2.1:8080", remote: "192.0.2.7:5000", want: http.StatusForbidden},
		{name: "plain HTTP to a wildcard listener from afar", local: "10.0.0.5:8080", remote: "198.51.100.9:5000", want: http.StatusForbidden},
		{name: "loopback client, public listener address", local: "192.0.2.1:8080", remote: "127.0.0.1:5000", want: http.StatusForbidden},
		{name: "allowed plain HTTP", local: "192.0.2.1:8080", remote: "192.0.2.7:5000", allow: true, want: http.StatusOK},
		{name: "TLS", local: "192.0.2.1:443", remote: "192.0.2.7:5000", tls: true, want: http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			con, err := console.New(console.Config{Control: srv.Control(), Pipeline: srv.Pipeline(), Store: srv.Store(),
				AllowHTTP: tc.allow, BaseURL: "https://tp.example.com"})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/admin/signin", nil)
			req.RemoteAddr = tc.remote
			local, _ := net.ResolveTCPAddr("tcp", tc.local)
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, local))
			if tc.tls {
				req.TLS = &tls.ConnectionState{}
			}
			rec := httptest.NewRecorder()
			con.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("GET /admin/signin: %d, want %d:\n%s", rec.Code, tc.want, rec.Body)
			}
			if tc.want == http.StatusForbidden {
				if !strings.Contains(rec.Body.String(), "--console-allow-http") {
					t.Errorf("the refusal gives no hint:\n%s", rec.Body)
				}
				return
			}
			for _, ck := range rec.Result().Cookies() {
				if !ck.Secure || !ck.HttpOnly {
					t.Errorf("cookie %s with an https BaseURL: Secure=%v HttpOnly=%v", ck.Name, ck.Secure, ck.HttpOnly)
				}
			}
		})
	}
}

func mustID(t *testing.T, s string) tailcfg.NodeID {
	t.Helper()
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return tailcfg.NodeID(id)
}
