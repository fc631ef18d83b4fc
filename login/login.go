package login

import (
	"cmp"
	"context"
	"crypto/rand"
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
	"github.com/tailplane/tailplane/store"
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
	// Store holds the pending logins, so that a login started on one
	// replica completes on whichever the browser or the admin reaches.
	// Required.
	Store *store.Store
	// Poll is how often a Wait reads its login again without being told
	// (Changed) that it changed, when Store is shared by replicas
	// (PostgreSQL): the fallback for a notification lost on the way.
	// Zero means 3 s. On SQLite a Wait is woken in process only.
	Poll time.Duration
}

// Result is how a login completed.
type Result struct {
	User string // the declared user's login
	Via  string // "oidc" or "admin"
}

// Pending is a login that was started and has not completed.
type Pending struct {
	ID      string // short login ID shown to the person and given to Approve
	URL     string // where the person logs in; single-use and secret (List and Lookup leave it empty)
	Machine string // the machine identity that started it
	// Bound is what the starter bound to the login (StartOptions.Bound;
	// control: the node key it was started for).
	Bound   string
	Device  string // what the device says it is ("laptop (linux)"), for admins; may be empty
	Started time.Time
	Expires time.Time
	// User, for a check (StartCheck), is the one declared user who may
	// complete it. Empty for a registration, which any declared user
	// completes.
	User string
}

// Errors returned by Wait and Approve (and ErrBusy by StartCheck).
var (
	ErrUnknown      = errors.New("no such login (it may have expired and been removed)")
	ErrExpired      = errors.New("the login expired before it completed")
	ErrWrongMachine = errors.New("the login was started by another machine")
	ErrDone         = errors.New("the login has completed already")
	ErrUndeclared   = errors.New("the user is not declared under users")
	ErrCanceled     = errors.New("the login was canceled (a newer login from the same device replaced it)")
	ErrBusy         = errors.New("too many checks are open for this group")
)

// ErrWrongUser is Approve's error for a check approved as another user
// than the one it is for.
var ErrWrongUser = errors.New("the check is for another user")

// Manager runs pending logins, kept in the store, and serves their pages.
type Manager struct {
	cfg    Config
	st     *store.Store
	ttl    time.Duration
	poll   time.Duration // 0: Wait is woken in process only (SQLite)
	secure bool          // cookies get Secure: BaseURL is https

	mu        sync.Mutex        // guards the fields below
	watches   map[string]*watch // Waits in progress, by login ID
	oidcCfg   *schema.OIDC      // the provider logins go to; nil: none (admins approve)
	client    *oidcClient       // oidcCfg's discovered client; nil until discovered
	usersFile string            // Config.UsersFile, or what SetUsersFile set
}

// oidcClient is a discovered provider: how to send people there and to
// verify what it answers.
type oidcClient struct {
	cfg      *schema.OIDC
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
}

// key names the provider and client c is, as a flow records it: a
// callback for a flow begun at another provider (login.oidc changed
// meanwhile) is refused.
func (c *oidcClient) key() string {
	return strings.Join([]string{c.cfg.Issuer, c.cfg.ClientID, c.cfg.EmailClaim, strings.Join(c.cfg.Scopes, " ")}, "\n")
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
	if cfg.Store == nil {
		return nil, errors.New("login: Config.Store is nil (hint: pass the server's store, which keeps the pending logins)")
	}
	m := &Manager{
		cfg: cfg, st: cfg.Store, ttl: cfg.TTL, secure: base.Scheme == "https",
		watches: map[string]*watch{}, oidcCfg: cfg.OIDC, usersFile: cfg.UsersFile,
	}
	if m.ttl <= 0 {
		m.ttl = DefaultTTL
	}
	if cfg.Store.ReplicaID() != "" {
		m.poll = cmp.Or(cfg.Poll, 3*time.Second)
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
		// A flow records its provider: sign-ins in progress at the old
		// one are refused when they come back.
		if m.oidcCfg != nil {
			m.logf("login: the identity provider changed; sign-ins in progress must start again")
		}
		m.oidcCfg, m.client = o, nil
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
