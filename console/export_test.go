package console

import (
	"crypto/rand"
	"net/http"
)

// SessionCookieFor starts a session for the declared user login as an
// OIDC sign-in would, and returns its cookie and CSRF token: for tests
// of what a user's role may do, apart from how it signed in.
func (c *Console) SessionCookieFor(login string) (*http.Cookie, string) {
	s := &session{login: login, csrf: rand.Text(), expires: c.now().Add(SessionTTL)}
	return &http.Cookie{Name: sessionCookie, Value: c.sessions.add(s, c.now())}, s.csrf
}
