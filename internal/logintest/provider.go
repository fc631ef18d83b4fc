package logintest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is an account at the test provider.
type User struct {
	Password string
	Email    string
	Verified bool // the ID token's email_verified
}

// Provider is a real OpenID provider (zitadel's op package, OpenID
// certified) with one confidential client and a password login page
// (Browser.SignIn fills it).
type Provider struct {
	URL          string // the issuer
	ClientID     string
	ClientSecret string
	store        *opStorage
}

// StartProvider starts a provider on a loopback httptest server whose one
// client may redirect to redirectURI, with users by username, and stops it
// when the test ends.
func StartProvider(t testing.TB, redirectURI string, users map[string]User) *Provider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	st := &opStorage{users: users, key: key, client: "tailplane", secret: "s3cret-client", redirect: []string{redirectURI},
		requests: map[string]*authReq{}, codes: map[string]string{}}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	var crypto [32]byte
	rand.Read(crypto[:])
	prov, err := op.NewOpenIDProvider(srv.URL, &op.Config{CryptoKey: crypto, CodeMethodS256: true}, st, op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	st.callback = op.AuthCallbackURL(prov)
	mux.HandleFunc("/ui/login", st.loginPage)
	mux.Handle("/", prov)
	return &Provider{URL: srv.URL, ClientID: st.client, ClientSecret: st.secret, store: st}
}

var loginForm = template.Must(template.New("f").Parse(`<!doctype html><html><body>
<h1>Test provider</h1>{{with .Err}}<p id="err">{{.}}</p>{{end}}
<form method="post" action="/ui/login"><input type="hidden" name="id" value="{{.ID}}">
<input id="username" name="username"><input id="password" name="password" type="password">
<button id="submit" type="submit">Sign in</button></form></body></html>`))

// loginPage checks a username and password and finishes the auth request.
func (s *opStorage) loginPage(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		loginForm.Execute(w, map[string]string{"ID": r.URL.Query().Get("authRequestID")})
		return
	}
	r.ParseForm()
	id, name := r.FormValue("id"), r.FormValue("username")
	s.mu.Lock()
	u, ok := s.users[name]
	req := s.requests[id]
	if ok && u.Password == r.FormValue("password") && req != nil {
		req.subject, req.done = name, true
	}
	s.mu.Unlock()
	if !ok || req == nil || !req.done {
		loginForm.Execute(w, map[string]string{"ID": id, "Err": "wrong username or password"})
		return
	}
	http.Redirect(w, r, s.callback(r.Context(), id), http.StatusFound)
}

type authReq struct {
	*oidc.AuthRequest
	id      string
	subject string
	done    bool
	created time.Time
}

func (a *authReq) GetID() string          { return a.id }
func (a *authReq) GetACR() string         { return "" }
func (a *authReq) GetAMR() []string       { return []string{"pwd"} }
func (a *authReq) GetAudience() []string  { return []string{a.ClientID} }
func (a *authReq) GetAuthTime() time.Time { return a.created }
func (a *authReq) GetClientID() string    { return a.ClientID }
func (a *authReq) GetCodeChallenge() *oidc.CodeChallenge {
	return &oidc.CodeChallenge{Challenge: a.CodeChallenge, Method: a.CodeChallengeMethod}
}
func (a *authReq) GetNonce() string                   { return a.Nonce }
func (a *authReq) GetRedirectURI() string             { return a.RedirectURI }
func (a *authReq) GetResponseType() oidc.ResponseType { return a.ResponseType }
func (a *authReq) GetResponseMode() oidc.ResponseMode { return a.ResponseMode }
func (a *authReq) GetScopes() []string                { return a.Scopes }
func (a *authReq) GetState() string                   { return a.State }
func (a *authReq) GetSubject() string                 { return a.subject }
func (a *authReq) Done() bool                         { return a.done }

// opStorage is the provider's minimal storage: one client, the test
// users, auth requests and codes in memory, one RSA signing key.
type opStorage struct {
	users    map[string]User
	key      *rsa.PrivateKey
	client   string
	secret   string
	callback func(context.Context, string) string

	mu       sync.Mutex // guards the fields below
	redirect []string
	requests map[string]*authReq
	codes    map[string]string // code to request ID
	n        int
}

func (s *opStorage) CreateAuthRequest(_ context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	a := &authReq{AuthRequest: r, id: fmt.Sprintf("req%d", s.n), created: time.Now()}
	s.requests[a.id] = a
	return a, nil
}

func (s *opStorage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.requests[id]; a != nil {
		return a, nil
	}
	return nil, errors.New("no such auth request")
}

func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("no such code")
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *opStorage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

func (s *opStorage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for c, rid := range s.codes {
		if rid == id {
			delete(s.codes, c)
		}
	}
	return nil
}

func (s *opStorage) CreateAccessToken(context.Context, op.TokenRequest) (string, time.Time, error) {
	return rand.Text(), time.Now().Add(5 * time.Minute), nil
}

func (s *opStorage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errors.New("refresh tokens are not supported")
}

func (s *opStorage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}
func (s *opStorage) TerminateSession(context.Context, string, string) error { return nil }
func (s *opStorage) RevokeToken(context.Context, string, string, string) *oidc.Error {
	return nil
}
func (s *opStorage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

type signingKey struct{ k *rsa.PrivateKey }

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.k }
func (k signingKey) ID() string                                  { return "k1" }

type publicKey struct{ k *rsa.PrivateKey }

func (k publicKey) ID() string                         { return "k1" }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.k.PublicKey }

func (s *opStorage) SigningKey(context.Context) (op.SigningKey, error) { return signingKey{s.key}, nil }
func (s *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}
func (s *opStorage) KeySet(context.Context) ([]op.Key, error) { return []op.Key{publicKey{s.key}}, nil }

func (s *opStorage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if id != s.client {
		return nil, errors.New("unknown client")
	}
	return testClient{s}, nil
}

func (s *opStorage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	if id != s.client || secret != s.secret {
		return errors.New("wrong client credentials")
	}
	return nil
}

func (s *opStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest puts the email claims into the ID token.
func (s *opStorage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, _ []string) error {
	s.setInfo(info, req.GetSubject())
	return nil
}

func (s *opStorage) setInfo(info *oidc.UserInfo, subject string) {
	u := s.users[subject]
	info.Subject = subject
	info.Email = u.Email
	info.EmailVerified = oidc.Bool(u.Verified)
}

func (s *opStorage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, _, subject, _ string) error {
	s.setInfo(info, subject)
	return nil
}
func (s *opStorage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return nil
}
func (s *opStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}
func (s *opStorage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("not supported")
}
func (s *opStorage) ValidateJWTProfileScopes(_ context.Context, _ string, scopes []string) ([]string, error) {
	return scopes, nil
}
func (s *opStorage) Health(context.Context) error { return nil }

type testClient struct{ s *opStorage }

func (c testClient) GetID() string { return c.s.client }
func (c testClient) RedirectURIs() []string {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return slices.Clone(c.s.redirect)
}
func (c testClient) PostLogoutRedirectURIs() []string    { return nil }
func (c testClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c testClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c testClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c testClient) GrantTypes() []oidc.GrantType         { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c testClient) LoginURL(id string) string            { return "/ui/login?authRequestID=" + id }
func (c testClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c testClient) IDTokenLifetime() time.Duration       { return 5 * time.Minute }
func (c testClient) DevMode() bool                        { return true }
func (c testClient) IsScopeAllowed(string) bool           { return false }
func (c testClient) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c testClient) ClockSkew() time.Duration             { return 0 }
func (c testClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c testClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// AllowRedirect lets the client redirect to uri too: a server whose URL
// is known only once it runs registers its callback after the provider
// started.
func (p *Provider) AllowRedirect(uri string) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.redirect = append(p.store.redirect, uri)
}

// TamperNonces makes every open auth request answer with nonce, as an ID
// token minted for another sign-in would.
func (p *Provider) TamperNonces(nonce string) {
	s := p.store
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.requests {
		a.Nonce = nonce
	}
}
