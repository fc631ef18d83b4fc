package console

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tailplane/tailplane/login"
)

// oidcCookie holds a browser's OIDC sign-in in progress (login.SignIn).
const oidcCookie = "tailplane_console_oidc"

// redirectURL is where the provider sends the browser back: register it
// with the provider next to BASE/login/callback.
func (c *Console) redirectURL() string {
	return strings.TrimSuffix(c.cfg.BaseURL, "/") + "/admin/oidc/callback"
}

func (c *Console) oidcReady(w http.ResponseWriter, r *http.Request) bool {
	if c.cfg.Login == nil || !c.cfg.Login.HasOIDC() || c.cfg.BaseURL == "" {
		c.problem(w, r, http.StatusNotFound, "No identity provider",
			"This server has no OIDC provider configured for the console.", "Sign in with an API key, or declare login.oidc.")
		return false
	}
	return true
}

// oidcStart sends the browser to the provider.
func (c *Console) oidcStart(w http.ResponseWriter, r *http.Request) {
	if !c.oidcReady(w, r) {
		return
	}
	authURL, s, err := c.cfg.Login.BeginSignIn(r.Context(), c.redirectURL())
	if err != nil {
		c.problem(w, r, http.StatusServiceUnavailable, "Sign-in unavailable", err.Error(), "Sign in with an API key.")
		return
	}
	// The page to go back to rides along; safeNext checks it on return.
	c.setCookie(w, r, oidcCookie, s.Encode()+"|"+url.QueryEscape(r.FormValue("next")), 10*time.Minute)
	http.Redirect(w, r, authURL, http.StatusFound)
}

// oidcCallback completes the sign-in the provider answered and starts a
// session for the declared user.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if !c.oidcReady(w, r) {
		return
	}
	ck, err := r.Cookie(oidcCookie)
	c.setCookie(w, r, oidcCookie, "", 0) // single use, whatever happens next
	var s login.SignIn
	var next string
	ok := err == nil
	if ok {
		enc, rawNext, _ := strings.Cut(ck.Value, "|")
		next, _ = url.QueryUnescape(rawNext)
		s, ok = login.DecodeSignIn(enc)
	}
	if !ok {
		c.logf("console: OIDC callback refused: no sign-in started in this browser")
		c.problem(w, r, http.StatusBadRequest, "Sign-in not accepted", login.ErrBadSignIn.Error()+".", "Start again at /admin/signin, in this browser.")
		return
	}
	who, err := c.cfg.Login.FinishSignIn(r.Context(), c.redirectURL(), s, r.URL.Query())
	if err != nil {
		c.logf("console: OIDC sign-in refused: %v", err)
		status, hint := http.StatusBadGateway, "Start again at /admin/signin. If it keeps failing, an admin checks the server log."
		switch {
		case errors.Is(err, login.ErrBadSignIn):
			status = http.StatusBadRequest
		case errors.Is(err, login.ErrUndeclared):
			status, hint = http.StatusForbidden, "An admin declares you under users in the config repository and pushes."
		}
		c.problem(w, r, status, "Sign-in not accepted", err.Error()+".", hint)
		return
	}
	c.logf("console: signed in as %s via OIDC", who)
	c.startSession(w, r, &session{login: who}, next)
}
