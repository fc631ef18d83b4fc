package login

import (
	"crypto/subtle"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tailplane/tailplane/store"
)

// stateCookie binds an OIDC flow to the browser that started it.
const stateCookie = "tailplane_login_state"

// ServeHTTP serves GET /login/{token} (the URL a device prints) and
// GET /login/callback (the provider's redirect). Mount it at /login/.
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("X-Frame-Options", "DENY")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		m.page(w, http.StatusMethodNotAllowed, page{Title: "Method not allowed", Message: "Open this page with a normal link."})
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/login/")
	switch {
	case !ok || rest == "" || strings.Contains(rest, "/"):
		m.page(w, http.StatusNotFound, pageUnknown)
	case rest == "callback":
		m.callback(w, r)
	default:
		m.start(w, r, rest)
	}
}

var (
	pageUnknown = page{Title: "Login link not valid",
		Message: "This login link is unknown, was used already, or has expired.",
		Hint:    "Run tailscale up again on your device and open the new link it prints."}
	pageExpired = page{Title: "Login link expired",
		Message: "This login link has expired.",
		Hint:    "Run tailscale up again on your device and open the new link it prints."}
	pageBadState = page{Title: "Sign-in not accepted",
		Message: "This sign-in response does not belong to a login started in this browser, or was used already.",
		Hint:    "Open the login link your device printed again, in this browser, and sign in from there."}
	pageNoProvider = page{Title: "Identity provider unreachable",
		Message: "tailplane cannot reach the identity provider it is configured to send you to.",
		Hint:    "Open the login link again in a minute. If it keeps failing, ask an admin to check login.oidc and the server log."}
	pageStoreDown = page{Title: "Login not available",
		Message: "tailplane cannot read its logins right now.",
		Hint:    "Open the login link again in a minute. If it keeps failing, ask an admin to check the server log."}
	pageFailed = page{Title: "Sign-in failed",
		Message: "The identity provider's answer could not be verified.",
		Hint:    "Open the login link your device printed again. If it keeps failing, ask an admin to check the server log."}
)

// start serves the login URL: with OIDC it begins a flow and redirects to
// the provider; without, it shows the login ID and the admin's command.
func (m *Manager) start(w http.ResponseWriter, r *http.Request, token string) {
	l, err := m.st.LoginByToken(r.Context(), hashToken(token))
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && l.State != store.LoginOpen):
		m.page(w, http.StatusNotFound, pageUnknown)
		return
	case err != nil:
		m.logf("login page: %v", err)
		m.page(w, http.StatusServiceUnavailable, pageStoreDown)
		return
	case !m.now().Before(l.Expires):
		m.page(w, http.StatusGone, pageExpired)
		return
	}
	p := pendingOf(l)
	client, err := m.provider(r.Context())
	if err != nil {
		m.logf("login %s: %v", p.ID, err)
		m.page(w, http.StatusServiceUnavailable, pageNoProvider)
		return
	}
	if client == nil {
		m.page(w, http.StatusOK, page{Title: "Waiting for an admin",
			Message: "No identity provider is configured. Give an admin this login ID:",
			Code:    displayID(p.ID),
			Command: "tailplane logins approve " + p.ID + " --user " + p.approveAs(),
			Hint:    p.adminHint()})
		return
	}
	// The state travels through the provider; the nonce and the PKCE
	// verifier stay in this browser's cookie, the store keeps only the
	// state's hash and which login and provider it is for.
	s := SignIn{State: randomString(20), Nonce: randomString(20), Verifier: oauth2.GenerateVerifier()}
	f := store.LoginFlow{StateHash: hashToken(s.State), Login: p.ID, Provider: client.key(), Expires: p.Expires}
	if err := m.st.AddLoginFlow(r.Context(), f); err != nil {
		m.logf("login %s: %v", p.ID, err)
		m.page(w, http.StatusServiceUnavailable, pageStoreDown)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: stateCookie, Value: s.Encode(), Path: "/login/",
		MaxAge: int(m.ttl.Seconds()), HttpOnly: true, Secure: m.secure || r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	})
	m.logf("login %s: sent to the identity provider", p.ID)
	http.Redirect(w, r, client.oauth.AuthCodeURL(s.State, oidc.Nonce(s.Nonce), oauth2.S256ChallengeOption(s.Verifier)), http.StatusFound)
}

// callback serves the provider's redirect: the state must match this
// browser's cookie and an open flow (once, on whichever replica); then
// the code is exchanged with the cookie's PKCE verifier, the ID token
// verified, its nonce checked, and the verified email must be a declared
// user.
func (m *Manager) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	c, err := r.Cookie(stateCookie)
	var s SignIn
	ok := err == nil
	if ok {
		s, ok = DecodeSignIn(c.Value)
	}
	if !ok || state == "" || subtle.ConstantTimeCompare([]byte(s.State), []byte(state)) != 1 {
		m.logf("login callback refused: state missing or not this browser's")
		m.page(w, http.StatusBadRequest, pageBadState)
		return
	}
	f, err := m.st.TakeLoginFlow(r.Context(), hashToken(state)) // single use, whatever happens next
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: "", Path: "/login/", MaxAge: -1,
		HttpOnly: true, Secure: m.secure || r.TLS != nil, SameSite: http.SameSiteLaxMode})
	switch {
	case errors.Is(err, store.ErrNotFound):
		m.logf("login callback refused: state unknown or used already")
		m.page(w, http.StatusBadRequest, pageBadState)
		return
	case err != nil:
		m.logf("login callback: %v", err)
		m.page(w, http.StatusServiceUnavailable, pageStoreDown)
		return
	}
	l, err := m.st.LoginByID(r.Context(), f.Login)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && l.State != store.LoginOpen):
		m.page(w, http.StatusBadRequest, pageUnknown)
		return
	case err != nil:
		m.logf("login %s: %v", f.Login, err)
		m.page(w, http.StatusServiceUnavailable, pageStoreDown)
		return
	case !m.now().Before(l.Expires):
		m.page(w, http.StatusGone, pageExpired)
		return
	}
	p := pendingOf(l)
	if e := q.Get("error"); e != "" {
		m.logf("login %s: the identity provider answered %q", p.ID, e)
		m.page(w, http.StatusForbidden, page{Title: "Sign-in cancelled", Message: "The identity provider did not sign you in.",
			Hint: "Open the login link your device printed again to retry."})
		return
	}
	client, err := m.provider(r.Context())
	switch {
	case err != nil:
		m.logf("login %s: %v", p.ID, err)
		m.page(w, http.StatusServiceUnavailable, pageNoProvider)
		return
	case client == nil || client.key() != f.Provider:
		m.logf("login %s: callback refused: the identity provider changed since the sign-in began", p.ID)
		m.page(w, http.StatusBadRequest, pageBadState)
		return
	}
	login, pg := m.verify(r, p.ID, client, s, q.Get("code"))
	if pg != nil {
		m.page(w, pg.status, pg.page)
		return
	}
	m.finishCallback(w, r, p, login)
}

// finishCallback completes p as login, the verified user who signed in,
// if login is declared and may complete p.
func (m *Manager) finishCallback(w http.ResponseWriter, r *http.Request, p Pending, login string) {
	canonical, ok := m.cfg.LookupUser(r.Context(), login)
	if !ok {
		m.logf("login %s: refused %s: not declared under users", p.ID, login)
		m.page(w, http.StatusForbidden, m.undeclaredPage(login))
		return
	}
	if !p.allows(canonical) {
		m.logf("login %s: refused %s: the check is for %s", p.ID, canonical, p.User)
		m.page(w, http.StatusForbidden, page{Title: "Signed in as the wrong user",
			Message: "This check is for " + p.User + ", but you signed in as " + canonical + ".",
			Hint:    "Open the link again and sign in as " + p.User + ", the owner of the device the SSH connection comes from."})
		return
	}
	if err := m.complete(r.Context(), p.ID, Result{User: canonical, Via: "oidc"}); err != nil {
		pg := pageUnknown
		switch {
		case errors.Is(err, ErrExpired):
			pg = pageExpired
		case !errors.Is(err, ErrDone) && !errors.Is(err, ErrCanceled) && !errors.Is(err, ErrUnknown):
			m.logf("login %s: %v", p.ID, err)
			m.page(w, http.StatusServiceUnavailable, pageStoreDown)
			return
		}
		m.page(w, http.StatusBadRequest, pg)
		return
	}
	if p.User != "" {
		m.page(w, http.StatusOK, page{Title: "Check passed",
			Message: "You are signed in as " + canonical + "; your SSH session goes on.",
			Hint:    "You can close this window."})
		return
	}
	m.page(w, http.StatusOK, page{Title: "You're connected",
		Message: "Your device is joining the tailnet as " + canonical + ".",
		Hint:    "You can close this window."})
}

type statusPage struct {
	status int
	page   page
}

// verify exchanges code (with s's PKCE verifier) at c and checks the ID
// token, s's nonce and the verified email claim, returning the login or
// the page to show.
func (m *Manager) verify(r *http.Request, id string, c *oidcClient, s SignIn, code string) (string, *statusPage) {
	login, err := m.exchangeCode(r.Context(), c.oauth, c.verifier, c.cfg.EmailClaim, code, s.Verifier, s.Nonce)
	if err == nil {
		return login, nil
	}
	m.logf("login %s: %v", id, err)
	var te *tokenError
	if !errors.As(err, &te) {
		return "", &statusPage{http.StatusBadGateway, pageFailed}
	}
	switch te.problem {
	case tokenWrongNonce:
		return "", &statusPage{http.StatusBadRequest, page{Title: "Sign-in not accepted",
			Message: "The identity provider's answer was made for another sign-in (nonce mismatch).",
			Hint:    "Open the login link your device printed again and sign in from there."}}
	case tokenNoClaim:
		return "", &statusPage{http.StatusForbidden, page{Title: "Sign-in not accepted",
			Message: "The identity provider did not say who you are (no " + te.claim + " claim).",
			Hint:    "Ask an admin to check login.oidc.emailClaim and the provider's scopes."}}
	case tokenUnverified:
		return "", &statusPage{http.StatusForbidden, page{Title: "Email not verified",
			Message: "Your identity provider has not verified the email address " + te.login + ".",
			Hint:    "Verify the address with your identity provider, then open the login link again."}}
	}
	return "", &statusPage{http.StatusBadGateway, pageFailed}
}

// redactErr describes an exchange error without the response body, which
// may echo the code.
func redactErr(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := "the provider refused the code"
		if re.ErrorCode != "" {
			msg += ": " + re.ErrorCode
		}
		return msg
	}
	return "request to the provider failed"
}

func (m *Manager) undeclaredPage(login string) page {
	m.mu.Lock()
	file := m.usersFile
	m.mu.Unlock()
	if file == "" {
		file = "the config repository"
	}
	return page{Title: "Not a member of this tailnet",
		Message: "You signed in as " + login + ", but no user by that login is declared.",
		Hint:    "An admin adds you under the users key in " + file + " and pushes; then run tailscale up again.",
		Code:    `"users": {"` + login + `": {}}`}
}

// approveAs is the --user an admin approves p with: the user of a check,
// else a placeholder.
func (p Pending) approveAs() string {
	if p.User != "" {
		return p.User
	}
	return "LOGIN"
}

// adminHint says what the admin's approval of p does.
func (p Pending) adminHint() string {
	if p.User != "" {
		return "The SSH session waiting for this check goes on as soon as the admin runs this command."
	}
	return "Your device joins as soon as the admin runs this command with your login (as declared under users)."
}

// displayID groups a login ID for reading: "ABCD-EFGH".
func displayID(id string) string {
	if len(id) == 8 {
		return id[:4] + "-" + id[4:]
	}
	return id
}

type page struct {
	Title, Message, Code, Command, Hint string
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · tailplane</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5}
code,pre{background:#f2f2f2;padding:.2rem .4rem;border-radius:4px}pre{padding:.8rem;overflow-x:auto}.code{font-size:2rem;letter-spacing:.15rem}</style>
</head><body>
<h1 id="title">{{.Title}}</h1>
<p id="message">{{.Message}}</p>
{{with .Code}}<p><code class="code" id="code">{{.}}</code></p>{{end}}
{{with .Command}}<pre id="command">{{.}}</pre>{{end}}
{{with .Hint}}<p id="hint">{{.}}</p>{{end}}
</body></html>
`))

func (m *Manager) page(w http.ResponseWriter, status int, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, p); err != nil {
		m.logf("login page: %v", err)
	}
}
