// Package console serves tailplane's web console at /admin/: the nodes
// (searchable, with expire, delete, rename, approve and reject), the
// users, the applied and attempted revisions with their plans and errors,
// the audit log, and a policy explorer answered by the policy engine.
//
// Pages are rendered on the server (html/template, embedded), work
// without JavaScript and fit a phone. Access:
//
//   - sign in with an API key declared under apiKeys: role admin may do
//     everything, role read may look at everything;
//   - sign in through the OIDC provider of login.oidc (Config.Login): the
//     declared user's role decides, owners and admins get everything and
//     members see only their own devices, with no actions.
//
// A session is an unguessable HttpOnly, SameSite=Lax cookie scoped to
// /admin/, Secure over HTTPS, kept in memory (a restart signs everyone
// out), lasting SessionTTL and only while its key or user stays declared.
// Every POST carries the session's CSRF token in its form. Over plain HTTP
// the console answers only loopback connections, unless
// Config.AllowHTTP. Actions go through control's node actions and are
// audited like the API's (admin.AuditedNodeAction). docs/console.md
// describes it for operators.
package console

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/login"
	"github.com/tailplane/tailplane/pipeline"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

// SessionTTL is how long a console session lasts after sign-in.
const SessionTTL = 12 * time.Hour

// Config configures the console. Control, Pipeline and Store are
// required.
type Config struct {
	Control  *control.Server    // the nodes, their actions and the served tailnet
	Pipeline *pipeline.Pipeline // the attempted revision and the source
	Store    *store.Store       // applied revisions, their plans, the audit log
	// Metrics counts the console's audited actions with the API's (the
	// server's admin.Metrics). Nil: not counted.
	Metrics *admin.Metrics

	// BaseURL is the server's external URL; https makes cookies Secure
	// even behind a TLS-terminating proxy on the same host. Empty: cookies
	// are Secure exactly on TLS connections.
	BaseURL string
	// AllowHTTP serves the console over plain HTTP to any address (`serve
	// --console-allow-http`: a trusted network, or a TLS proxy elsewhere).
	// False: plain HTTP is answered only on loopback connections.
	AllowHTTP bool
	// RepoWebURL links errors to the file on the Git host: a URL with
	// {commit}, {path} and {line} in it, such as
	// "https://github.com/org/tailnet/blob/{commit}/{path}#L{line}".
	// {path} is the file's path in the repository. Empty: no links.
	RepoWebURL string
	// Login, when set, offers sign-in through its OIDC provider. Nil:
	// API keys only.
	Login *login.Manager
	// Logf logs sign-ins and refusals, never a key, cookie or token. Nil:
	// no logging.
	Logf func(format string, args ...any)
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console is the console's handler; mount it at /admin/.
type Console struct {
	cfg      Config
	tmpl     map[string]*template.Template // by page file name
	sessions *sessions
	mux      *http.ServeMux
}

// New returns the console. It fails when a required part is missing or
// RepoWebURL is malformed.
func New(cfg Config) (*Console, error) {
	if cfg.Control == nil || cfg.Pipeline == nil || cfg.Store == nil {
		return nil, errors.New("console: Config needs Control, Pipeline and Store")
	}
	if cfg.RepoWebURL != "" {
		if u, err := url.Parse(cfg.RepoWebURL); err != nil || u.Host == "" || !strings.Contains(cfg.RepoWebURL, "{path}") {
			return nil, errBadRepoURL(cfg.RepoWebURL)
		}
	}
	c := &Console{cfg: cfg, sessions: newSessions()}
	c.tmpl = parseTemplates()
	c.routes()
	return c, nil
}

func (c *Console) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

func (c *Console) logf(format string, args ...any) {
	if c.cfg.Logf != nil {
		c.cfg.Logf(format, args...)
	}
}

func (c *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /admin/static/", http.StripPrefix("/admin/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /admin/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/admin/nodes", http.StatusSeeOther)
	})
	m.HandleFunc("GET /admin/signin", c.signInPage)
	m.HandleFunc("POST /admin/signin", c.signInKey)
	m.HandleFunc("GET /admin/oidc/start", c.oidcStart)
	m.HandleFunc("GET /admin/oidc/callback", c.oidcCallback)
	m.Handle("POST /admin/signout", c.authed(c.signOut))
	m.Handle("GET /admin/nodes", c.authed(c.nodesPage))
	m.Handle("GET /admin/nodes/{id}", c.authed(c.nodePage))
	m.Handle("POST /admin/nodes/{id}/{action}", c.authed(c.nodeAction))
	m.Handle("GET /admin/users", c.authed(c.usersPage))
	m.Handle("GET /admin/revisions", c.authed(c.revisionsPage))
	m.Handle("GET /admin/revisions/{id}", c.authed(c.revisionPage))
	m.Handle("GET /admin/audit", c.authed(c.auditPage))
	m.Handle("GET /admin/policy", c.authed(c.policyPage))
	c.mux = m
}

// ServeHTTP serves /admin/..., refusing plain HTTP off loopback.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	if !c.transportOK(r) {
		c.logf("console: refused plain HTTP from %s (hint: serve HTTPS, or pass --console-allow-http)", r.RemoteAddr)
		c.problem(w, r, http.StatusForbidden, "The console needs HTTPS",
			"This connection is plain HTTP and not from this machine, so sign-in cookies and API keys would cross the network readable.",
			"Serve HTTPS (tailplane serve --tls-cert/--tls-key), reach the console through a TLS proxy, or, on a trusted network only, start serve with --console-allow-http.")
		return
	}
	c.mux.ServeHTTP(w, r)
}

// transportOK reports whether r may be served: over TLS, with AllowHTTP,
// or on a connection whose both ends are loopback addresses.
func (c *Console) transportOK(r *http.Request) bool {
	if r.TLS != nil || c.cfg.AllowHTTP {
		return true
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return local != nil && isLoopback(local.String()) && isLoopback(r.RemoteAddr)
}

// isLoopback reports whether hostport's host is a loopback IP address.
func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// secure reports whether cookies set on r's answer get Secure.
func (c *Console) secure(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(c.cfg.BaseURL, "https://")
}

// served is the tailnet being served.
func (c *Console) served() *schema.Tailnet { return c.cfg.Control.Tailnet() }
