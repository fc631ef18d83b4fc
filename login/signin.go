package login

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Browser sign-ins: a person signs in to a web page of the server (the
// console) through the same OIDC provider as device logins, with its own
// redirect URL. Nothing is kept in the Manager: the caller keeps the
// SignIn in an HttpOnly cookie of the browser that started it, which
// binds the provider's answer to that browser.

// SignIn is one browser sign-in in progress. Its fields are secrets of
// the browser that started it.
type SignIn struct {
	State    string // sent to the provider and compared on return
	Nonce    string // must come back in the ID token
	Verifier string // the PKCE code verifier
}

// Encode renders s for a cookie value; DecodeSignIn reads it back.
func (s SignIn) Encode() string { return s.State + "." + s.Nonce + "." + s.Verifier }

// DecodeSignIn reads a SignIn that Encode rendered.
func DecodeSignIn(v string) (SignIn, bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return SignIn{}, false
	}
	return SignIn{State: parts[0], Nonce: parts[1], Verifier: parts[2]}, true
}

// Errors of FinishSignIn, besides ErrUndeclared.
var (
	ErrNoProvider   = errors.New("no OIDC provider is configured (login.oidc)")
	ErrBadSignIn    = errors.New("the sign-in response does not belong to a sign-in started in this browser")
	ErrSignInFailed = errors.New("the identity provider did not sign the person in")
)

// HasOIDC reports whether an OIDC provider is configured (login.oidc), so
// that BeginSignIn may work. It does not contact the provider.
func (m *Manager) HasOIDC() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.oidcCfg != nil
}

// signInProvider is the provider browser sign-ins go to: its OAuth
// configuration, ID token verifier and email claim, or ErrNoProvider.
// It discovers the provider first if needed (Manager.provider).
func (m *Manager) signInProvider(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, string, error) {
	c, err := m.provider(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	if c == nil {
		return nil, nil, "", ErrNoProvider
	}
	return c.oauth, c.verifier, c.cfg.EmailClaim, nil
}

// withRedirect is c with another redirect URL.
func withRedirect(c *oauth2.Config, redirectURL string) *oauth2.Config {
	cc := *c
	cc.RedirectURL = redirectURL
	return &cc
}

// BeginSignIn starts a browser sign-in that the provider answers at
// redirectURL (which must be registered with it). It returns the
// provider's URL to send the browser to.
func (m *Manager) BeginSignIn(ctx context.Context, redirectURL string) (authURL string, s SignIn, err error) {
	oc, _, _, err := m.signInProvider(ctx)
	if err != nil {
		return "", SignIn{}, err
	}
	s = SignIn{State: randomString(20), Nonce: randomString(20), Verifier: oauth2.GenerateVerifier()}
	authURL = withRedirect(oc, redirectURL).AuthCodeURL(s.State, oidc.Nonce(s.Nonce), oauth2.S256ChallengeOption(s.Verifier))
	return authURL, s, nil
}

// FinishSignIn completes the sign-in s with the provider's answer at
// redirectURL (its query): the state must be s's, the code is exchanged
// with s's PKCE verifier, the ID token verified with s's nonce, and the
// verified email must be a declared user, whose canonical login it
// returns. Errors name no code or token.
func (m *Manager) FinishSignIn(ctx context.Context, redirectURL string, s SignIn, query url.Values) (string, error) {
	oc, verifier, emailClaim, err := m.signInProvider(ctx)
	if err != nil {
		return "", err
	}
	if state := query.Get("state"); state == "" || subtle.ConstantTimeCompare([]byte(state), []byte(s.State)) != 1 {
		return "", ErrBadSignIn
	}
	if e := query.Get("error"); e != "" {
		return "", fmt.Errorf("%w (the provider answered %q)", ErrSignInFailed, e)
	}
	login, err := m.exchangeCode(ctx, withRedirect(oc, redirectURL), verifier, emailClaim, query.Get("code"), s.Verifier, s.Nonce)
	if err != nil {
		var te *tokenError
		if errors.As(err, &te) && te.problem == tokenWrongNonce {
			return "", fmt.Errorf("%w: %v", ErrBadSignIn, err)
		}
		return "", fmt.Errorf("%w: %v", ErrSignInFailed, err)
	}
	canonical, ok := m.cfg.LookupUser(ctx, login)
	if !ok {
		return "", fmt.Errorf("%s: %w", login, ErrUndeclared)
	}
	m.logf("console sign-in as %s via oidc", canonical)
	return canonical, nil
}
