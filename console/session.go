package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/schema"
)

// Cookie names. The session cookie is scoped to /admin/.
const (
	sessionCookie = "tailplane_console"
	preCookie     = "tailplane_console_pre" // binds the sign-in form (and an OIDC trip) to the browser
)

// Viewer is who a session is, as its request sees it: resolved afresh on
// every request from the served config, so a removed key or user ends the
// session and a changed role takes effect at once.
type Viewer struct {
	Who   string // the audit log's who: "apikey:NAME" or "user:LOGIN"
	Name  string // shown in the page header
	Login string // the declared user's login; empty for an API key
	Role  string // the key's role (read, admin) or the user's (owner, admin, member)
	CSRF  string // the session's token, put in every form
}

// CanAct reports whether the viewer may expire, delete, rename, approve
// and reject nodes: an admin key, an owner or an admin.
func (v *Viewer) CanAct() bool {
	return v.Role == admin.RoleAdmin || v.Role == string(schema.RoleOwner)
}

// SeesAll reports whether the viewer sees every node, the users, the
// revisions and the audit log: every API key, owners and admins. A member
// sees its own devices only.
func (v *Viewer) SeesAll() bool { return v.Login == "" || v.Role != string(schema.RoleMember) }

// session is a signed-in browser.
type session struct {
	csrf    string
	key     string // the API key's name; empty for a user
	keyHash string // the key's secretHash at sign-in: a rotated key ends the session
	login   string // the user's login; empty for a key
	expires time.Time
}

// sessions holds the console's sessions in memory, by cookie value.
type sessions struct {
	mu   sync.Mutex // guards the fields below
	byID map[string]*session
}

func newSessions() *sessions { return &sessions{byID: map[string]*session{}} }

// add stores s under a new random ID and returns the ID, forgetting
// expired sessions.
func (ss *sessions) add(s *session, now time.Time) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id, o := range ss.byID {
		if !now.Before(o.expires) {
			delete(ss.byID, id)
		}
	}
	id := rand.Text() + rand.Text() // 52 base32 characters, 260 bits
	ss.byID[id] = s
	return id
}

func (ss *sessions) get(id string, now time.Time) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[id]
	if s == nil || !now.Before(s.expires) {
		delete(ss.byID, id)
		return nil
	}
	return s
}

func (ss *sessions) remove(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, id)
}

// viewer resolves s against the served config; nil when its key or user
// is no longer declared.
func (c *Console) viewer(s *session) *Viewer {
	t := c.served()
	if s.login != "" {
		u, ok := t.Users[s.login]
		if !ok {
			return nil
		}
		role := string(u.Role)
		if role == "" {
			role = string(schema.RoleMember)
		}
		return &Viewer{Who: "user:" + s.login, Name: s.login, Login: s.login, Role: role, CSRF: s.csrf}
	}
	for _, k := range t.APIKeys {
		if k.Name == s.key && subtle.ConstantTimeCompare([]byte(strings.ToLower(k.SecretHash)), []byte(s.keyHash)) == 1 {
			return &Viewer{Who: "apikey:" + k.Name, Name: "API key " + k.Name, Role: k.Role, CSRF: s.csrf}
		}
	}
	return nil
}

type viewerKey struct{}

// viewerOf is the viewer authed put in r's context.
func viewerOf(r *http.Request) *Viewer {
	v, _ := r.Context().Value(viewerKey{}).(*Viewer)
	return v
}

// authed runs h for a signed-in viewer, checking the CSRF token of every
// POST; anyone else is sent to the sign-in page (a GET) or refused.
func (c *Console) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v *Viewer
		if ck, err := r.Cookie(sessionCookie); err == nil {
			if s := c.sessions.get(ck.Value, c.now()); s != nil {
				v = c.viewer(s)
			}
		}
		if v == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/admin/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.problem(w, r, http.StatusUnauthorized, "Not signed in", "This action needs a console session.", "Sign in again at /admin/signin.")
			return
		}
		if r.Method == http.MethodPost && !c.csrfOK(r, v.CSRF) {
			c.logf("console: refused a %s %s by %s: CSRF token missing or wrong", r.Method, r.URL.Path, v.Who)
			c.problem(w, r, http.StatusForbidden, "Request not accepted",
				"This form did not carry this session's token, so it may have come from another site.",
				"Go back, reload the page and submit the form again.")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), viewerKey{}, v)))
	})
}

// csrfOK checks a POST: the form's csrf field must be want, and an Origin
// header, when the browser sends one, must be this host's.
func (c *Console) csrfOK(r *http.Request, want string) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// setCookie sets (or, with an empty value, deletes) a console cookie.
func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	ck := &http.Cookie{Name: name, Value: value, Path: "/admin/", HttpOnly: true, Secure: c.secure(r),
		SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge.Seconds())}
	if value == "" {
		ck.MaxAge = -1
	}
	http.SetCookie(w, ck)
}

// startSession signs the browser in as s and sends it to next.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, s *session, next string) {
	s.csrf = rand.Text()
	s.expires = c.now().Add(SessionTTL)
	c.setCookie(w, r, sessionCookie, c.sessions.add(s, c.now()), SessionTTL)
	c.setCookie(w, r, preCookie, "", 0)
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}

// safeNext is next when it is a console path, else the nodes page: the
// sign-in never redirects off the console.
func safeNext(next string) string {
	if strings.HasPrefix(next, "/admin/") && !strings.HasPrefix(next, "//") && !strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	return "/admin/nodes"
}

// signInPage shows the sign-in form: an API key, and the OIDC provider
// when there is one. Its pre-session token binds the form to the browser.
func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	c.signInForm(w, r, http.StatusOK, "")
}

func (c *Console) signInForm(w http.ResponseWriter, r *http.Request, status int, errMsg string) {
	pre := rand.Text()
	c.setCookie(w, r, preCookie, pre, time.Hour)
	c.render(w, r, status, "signin.html", map[string]any{
		"Pre": pre, "Next": safeNext(r.FormValue("next")), "Error": errMsg, "OIDC": c.cfg.Login != nil && c.cfg.Login.HasOIDC(),
	})
}

// signInKey signs in with an API key declared under apiKeys.
func (c *Console) signInKey(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(preCookie); err != nil || !c.csrfOK(r, ck.Value) {
		c.signInForm(w, r, http.StatusForbidden, "This sign-in form has expired or was not opened in this browser. Please try again.")
		return
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	name, role := admin.LookupAPIKey(c.served(), key)
	if role == "" {
		c.logf("console: sign-in with an unknown API key from %s", r.RemoteAddr)
		c.signInForm(w, r, http.StatusUnauthorized, "That is not an API key declared under apiKeys in the applied config.")
		return
	}
	var hash string
	for _, k := range c.served().APIKeys {
		if k.Name == name {
			hash = strings.ToLower(k.SecretHash)
		}
	}
	c.logf("console: signed in with API key %s (role %s)", name, role)
	c.startSession(w, r, &session{key: name, keyHash: hash}, r.PostFormValue("next"))
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.sessions.remove(ck.Value)
	}
	c.setCookie(w, r, sessionCookie, "", 0)
	http.Redirect(w, r, "/admin/signin", http.StatusSeeOther)
}
