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
	"slices"
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
	URL     string // where the person logs in; single-use and secret (List leaves it empty)
	Machine string // the machine identity that started it
	Device  string // what the device says it is ("laptop (linux)"), for admins; may be empty
	Started time.Time
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
	ErrCanceled     = errors.New("the login was canceled (a newer login from the same device replaced it)")
)

// ErrWrongUser is Approve's error for a check approved as another user
// than the one it is for.
var ErrWrongUser = errors.New("the check is for another user")

// Manager holds pending logins and serves their pages.
type Manager struct {
	cfg    Config
	ttl    time.Duration
	secure bool // cookies get Secure: BaseURL is https

	mu        sync.Mutex          // guards the fields below
	byID      map[string]*pending // by short ID
	byToken   map[string]*pending // by URL token
	byState   map[string]*flow    // OIDC flows in progress, by state
	oidcCfg   *schema.OIDC        // the provider logins go to; nil: none (admins approve)
	client    *oidcClient         // oidcCfg's discovered client; nil until discovered
	usersFile string              // Config.UsersFile, or what SetUsersFile set
}

// oidcClient is a discovered provider: how to send people there and to
// verify what it answers.
type oidcClient struct {
	cfg      *schema.OIDC
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
}

type pending struct {
	Pending
	token  string
	done   chan struct{} // closed when result or err is set
	result Result
	err    error // ErrCanceled, or nil
}

// flow is one trip to the provider for a pending login.
type flow struct {
	p        *pending
	client   *oidcClient // the provider the person was sent to
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
		oidcCfg: cfg.OIDC, usersFile: cfg.UsersFile,
	}
	if m.ttl <= 0 {
		m.ttl = DefaultTTL
	}
	if cfg.OIDC == nil {
		return m, nil
	}
	if m.client, err = m.discover(ctx, cfg.OIDC); err != nil {
		return nil, err
	}
	return m, nil
}

// discover finds the provider o names and builds its client.
func (m *Manager) discover(ctx context.Context, o *schema.OIDC) (*oidcClient, error) {
	if m.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, m.cfg.HTTPClient)
	}
	provider, err := oidc.NewProvider(ctx, o.Issuer)
	if err != nil {
		return nil, fmt.Errorf("login: discovering OIDC provider %s: %w (hint: check login.oidc.issuer and that the server reaches it)", o.Issuer, err)
	}
	return &oidcClient{
		cfg:      o,
		verifier: provider.Verifier(&oidc.Config{ClientID: o.ClientID, Now: m.now}),
		oauth: &oauth2.Config{
			ClientID: o.ClientID, ClientSecret: m.cfg.ClientSecret,
			Endpoint:    provider.Endpoint(),
			RedirectURL: strings.TrimSuffix(m.cfg.BaseURL, "/") + "/login/callback",
			Scopes:      o.Scopes,
		},
	}, nil
}

// SetOIDC switches future logins to the provider o (nil: none, admins
// approve logins by ID), as a newly applied `login.oidc` says. Sign-ins in
// progress at the old provider must start again. A provider that cannot
// be discovered now is tried again when the next login page opens; the
// error says why it failed this time.
func (m *Manager) SetOIDC(ctx context.Context, o *schema.OIDC) error {
	m.mu.Lock()
	same := sameOIDC(m.oidcCfg, o)
	if !same {
		m.oidcCfg, m.client = o, nil
		if n := len(m.byState); n > 0 {
			m.logf("login: the identity provider changed; %d sign-ins in progress must start again", n)
		}
		m.byState = map[string]*flow{}
	}
	m.mu.Unlock()
	if same || o == nil {
		return nil
	}
	_, err := m.provider(ctx)
	return err
}

// SetUsersFile names the config file that declares users, for the page a
// refused user sees (as Config.UsersFile; empty: "the config repository").
func (m *Manager) SetUsersFile(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.usersFile = name
}

// sameOIDC reports whether a and b configure the same provider and client.
func sameOIDC(a, b *schema.OIDC) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Issuer == b.Issuer && a.ClientID == b.ClientID && a.EmailClaim == b.EmailClaim && slices.Equal(a.Scopes, b.Scopes)
}

// provider returns the configured provider's client, discovering it first
// if needed; nil, nil when no provider is configured.
func (m *Manager) provider(ctx context.Context) (*oidcClient, error) {
	m.mu.Lock()
	o, c := m.oidcCfg, m.client
	m.mu.Unlock()
	if o == nil || c != nil {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := m.discover(ctx, o)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.oidcCfg != o { // changed meanwhile
		return nil, errors.New("login: the identity provider changed during discovery; try again")
	}
	m.client = c
	return c, nil
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
func (m *Manager) Start(machine string) Pending { return m.StartFor(machine, "") }

// StartFor is Start with a description of the device for admins (shown by
// List and `tailplane logins list`), such as its hostname and OS.
func (m *Manager) StartFor(machine, device string) Pending {
	return m.open(machine, device, "")
}

// StartCheck begins a check: a login that only user (a declared login,
// the owner of the node that wants something checked) may complete, as
// for an SSH "check" rule. machine is, as for Start, the identity that
// may Wait for it: for an SSH check, the destination that holds the
// session. A person who signs in as anyone else is refused and the
// check stays open for user.
func (m *Manager) StartCheck(machine, user string) Pending {
	return m.open(machine, "", user)
}

func (m *Manager) open(machine, device, user string) Pending {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked()
	p := &pending{token: randomString(20), done: make(chan struct{})}
	for p.ID == "" || m.byID[p.ID] != nil {
		p.ID = randomString(5) // 8 characters, 40 bits: for admins to type
	}
	p.Machine = machine
	p.User = user
	p.Device = device
	p.Started = m.now()
	p.Expires = p.Started.Add(m.ttl)
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
		return p.result, p.err
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
		return p.result, p.err
	case <-timer.C:
		if p.isDone() {
			return p.result, p.err
		}
		return Result{}, ErrExpired
	case <-ctx.Done():
		if p.isDone() {
			return p.result, p.err
		}
		return Result{}, ctx.Err()
	}
}

// List returns the open logins (neither completed nor expired), oldest
// first, without their URLs.
func (m *Manager) List() []Pending {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var out []Pending
	for _, p := range m.byID {
		if !p.isDone() && now.Before(p.Expires) {
			q := p.Pending
			q.URL = ""
			out = append(out, q)
		}
	}
	slices.SortFunc(out, func(a, b Pending) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Cancel ends the open login id: its URL stops working and Wait returns
// ErrCanceled. A login that completed or is unknown is left as it is.
func (m *Manager) Cancel(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.byID[id]
	if p == nil || p.isDone() {
		return
	}
	p.err = ErrCanceled
	close(p.done)
	delete(m.byToken, p.token)
	m.logf("login %s: canceled", p.ID)
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
	case p.isDone() && p.err != nil:
		return p.err
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
