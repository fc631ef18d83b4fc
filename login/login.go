package login

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tailplane/tailplane/schema"
)

// DefaultTTL is how long a pending login lives when Config.TTL is zero.
const DefaultTTL = 10 * time.Minute

// Config configures a Manager. The zero value of each field is documented.
type Config struct {
	// BaseURL is the server's external URL ("https://tp.example.com").
	// Login URLs are BaseURL + "/login/<token>", the OIDC redirect URL is
	// BaseURL + "/login/callback". Required.
	BaseURL string
	// OIDC is the provider; nil means no provider: the login page shows
	// the login ID and an admin approves it (Approve).
	OIDC *schema.OIDC
	// ClientSecret is the OIDC client secret; it never comes from Git.
	// Empty means a public client (PKCE only).
	ClientSecret string
	// LookupUser reports whether login is a user declared under `users`,
	// and its canonical login. Required.
	LookupUser func(ctx context.Context, login string) (canonical string, ok bool)
	// UsersFile names the config file where users are declared, shown to
	// a refused user ("users.hujson"). Empty means "the config repository".
	UsersFile string
	// TTL is how long a pending login lives. Zero means DefaultTTL.
	TTL time.Duration
	// HTTPClient talks to the provider. Nil means http.DefaultClient.
	HTTPClient *http.Client
	// Logf receives one line per event, never a code, token or state.
	// Nil means no logging.
	Logf func(format string, args ...any)
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Result is how a login completed.
type Result struct {
	User string // the declared user's login
	Via  string // "oidc" or "admin"
}

// Pending is a login that was started and has not completed.
type Pending struct {
	ID      string // short login ID shown to the person and given to Approve
	URL     string // where the person logs in; single-use and secret
	Machine string // the machine identity that started it
	Expires time.Time
	// User, for a check (StartCheck), is the one declared user who may
	// complete it. Empty for a registration, which any declared user
	// completes.
	User string
}

// Errors returned by Wait and Approve.
var (
	ErrUnknown      = errors.New("no such login (it may have expired and been removed)")
	ErrExpired      = errors.New("the login expired before it completed")
	ErrWrongMachine = errors.New("the login was started by another machine")
	ErrDone         = errors.New("the login has completed already")
	ErrUndeclared   = errors.New("the user is not declared under users")
)

// ErrWrongUser is Approve's error for a check approved as another user
// than the one it is for.
var ErrWrongUser = errors.New("the check is for another user")

// Manager holds pending logins and serves their pages.
type Manager struct {
	cfg      Config
	ttl      time.Duration
	secure   bool // cookies get Secure: BaseURL is https
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config

	mu      sync.Mutex          // guards the fields below
	byID    map[string]*pending // by short ID
	byToken map[string]*pending // by URL token
	byState map[string]*flow    // OIDC flows in progress, by state
}

type pending struct {
	Pending
	token  string
	done   chan struct{} // closed when result is set
	result Result
}

// flow is one trip to the provider for a pending login.
type flow struct {
	p        *pending
	nonce    string
	verifier string // PKCE code verifier
}

// New returns a Manager. With cfg.OIDC it discovers the provider at its
// issuer, so ctx bounds that request.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("login: BaseURL %q is not an absolute URL (hint: pass the server's external URL)", cfg.BaseURL)
	}
	if cfg.LookupUser == nil {
		return nil, errors.New("login: Config.LookupUser is nil (hint: pass a lookup of the declared users)")
	}
	m := &Manager{
		cfg: cfg, ttl: cfg.TTL, secure: base.Scheme == "https",
		byID: map[string]*pending{}, byToken: map[string]*pending{}, byState: map[string]*flow{},
	}
	if m.ttl <= 0 {
		m.ttl = DefaultTTL
	}
	if cfg.OIDC == nil {
		return m, nil
	}
	if cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	}
	m.provider, err = oidc.NewProvider(ctx, cfg.OIDC.Issuer)
	if err != nil {
		return nil, fmt.Errorf("login: discovering OIDC provider %s: %w (hint: check login.oidc.issuer and that the server reaches it)", cfg.OIDC.Issuer, err)
	}
	m.verifier = m.provider.Verifier(&oidc.Config{ClientID: cfg.OIDC.ClientID, Now: m.now})
	m.oauth = &oauth2.Config{
		ClientID: cfg.OIDC.ClientID, ClientSecret: cfg.ClientSecret,
		Endpoint:    m.provider.Endpoint(),
		RedirectURL: strings.TrimSuffix(cfg.BaseURL, "/") + "/login/callback",
		Scopes:      cfg.OIDC.Scopes,
	}
	return m, nil
}

func (m *Manager) now() time.Time {
	if m.cfg.Now != nil {
		return m.cfg.Now()
	}
	return time.Now()
}

func (m *Manager) logf(format string, args ...any) {
	if m.cfg.Logf != nil {
		m.cfg.Logf(format, args...)
	}
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// randomString returns n random bytes, base32-encoded.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return idEncoding.EncodeToString(b)
}

// Start begins a login for machine, an opaque identity of the device that
// asked (its machine key). Only Wait with the same machine sees its result.
func (m *Manager) Start(machine string) Pending {
	return m.open(machine, "")
}

// StartCheck begins a check: a login that only user (a declared login,
// the owner of the node that wants something checked) may complete, as
// for an SSH "check" rule. machine is, as for Start, the identity that
// may Wait for it: for an SSH check, the destination that holds the
// session. A person who signs in as anyone else is refused and the
// check stays open for user.
func (m *Manager) StartCheck(machine, user string) Pending {
	return m.open(machine, user)
}

func (m *Manager) open(machine, user string) Pending {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked()
	p := &pending{token: randomString(20), done: make(chan struct{})}
	for p.ID == "" || m.byID[p.ID] != nil {
		p.ID = randomString(5) // 8 characters, 40 bits: for admins to type
	}
	p.Machine = machine
	p.User = user
	p.Expires = m.now().Add(m.ttl)
	p.URL = strings.TrimSuffix(m.cfg.BaseURL, "/") + "/login/" + p.token
	m.byID[p.ID] = p
	m.byToken[p.token] = p
	if user != "" {
		m.logf("login %s: started, a check for %s", p.ID, user)
	} else {
		m.logf("login %s: started", p.ID)
	}
	return p.Pending
}

// pruneLocked forgets logins expired for more than a TTL (so Wait still
// tells "expired" for a while) and their flows.
func (m *Manager) pruneLocked() {
	cutoff := m.now().Add(-m.ttl)
	for id, p := range m.byID {
		if p.Expires.Before(cutoff) {
			delete(m.byID, id)
			delete(m.byToken, p.token)
		}
	}
	for s, f := range m.byState {
		if m.byID[f.p.ID] != f.p {
			delete(m.byState, s)
		}
	}
}

// isDone reports whether p has completed.
func (p *pending) isDone() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait blocks until the login id, started by machine, completes, expires,
// or ctx ends. A completed login is reported even if ctx has ended.
func (m *Manager) Wait(ctx context.Context, id, machine string) (Result, error) {
	m.mu.Lock()
	p := m.byID[id]
	m.mu.Unlock()
	if p == nil {
		return Result{}, ErrUnknown
	}
	if subtle.ConstantTimeCompare([]byte(p.Machine), []byte(machine)) != 1 {
		return Result{}, ErrWrongMachine
	}
	if p.isDone() {
		return p.result, nil
	}
	wait := time.Until(p.Expires)
	if m.cfg.Now != nil {
		wait = p.Expires.Sub(m.now())
	}
	if wait <= 0 {
		return Result{}, ErrExpired
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.result, nil
	case <-timer.C:
		if p.isDone() {
			return p.result, nil
		}
		return Result{}, ErrExpired
	case <-ctx.Done():
		if p.isDone() {
			return p.result, nil
		}
		return Result{}, ctx.Err()
	}
}

// Approve completes the login id as the declared user (an admin's
// decision, `tailplane logins approve ID --user LOGIN`).
func (m *Manager) Approve(ctx context.Context, id, user string) error {
	canonical, ok := m.cfg.LookupUser(ctx, user)
	if !ok {
		return fmt.Errorf("approving login %s as %s: %w (hint: add it to users and push first)", id, user, ErrUndeclared)
	}
	m.mu.Lock()
	p := m.byID[strings.ToUpper(strings.ReplaceAll(id, "-", ""))]
	m.mu.Unlock()
	if p == nil {
		return fmt.Errorf("approving login %s: %w", id, ErrUnknown)
	}
	if !p.allows(canonical) {
		return fmt.Errorf("approving login %s as %s: %w, %s (hint: approve it as --user %s)", id, canonical, ErrWrongUser, p.User, p.User)
	}
	if err := m.complete(p, Result{User: canonical, Via: "admin"}); err != nil {
		return fmt.Errorf("approving login %s: %w", id, err)
	}
	return nil
}

// allows reports whether user (canonical) may complete p.
func (p *pending) allows(user string) bool {
	return p.User == "" || strings.EqualFold(p.User, user)
}

// complete sets p's result once, if p has not expired.
func (m *Manager) complete(p *pending, r Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case p.isDone():
		return ErrDone
	case !m.now().Before(p.Expires):
		return ErrExpired
	}
	p.result = r
	close(p.done)
	delete(m.byToken, p.token) // the URL is single-use
	m.logf("login %s: completed as %s via %s", p.ID, r.User, r.Via)
	return nil
}
