package login

import (
	"context"
	"crypto/subtle"
	"fmt"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// tokenProblem is why an authorization code yielded no login.
type tokenProblem int

const (
	tokenFailed     tokenProblem = iota // the exchange, the ID token or its claims failed: the provider's side
	tokenWrongNonce                     // the ID token was made for another sign-in
	tokenNoClaim                        // the ID token lacks the configured email claim
	tokenUnverified                     // the provider has not verified the login
)

// tokenError is the error of exchangeCode. Its text is fit for logs: it
// never holds the code or a token.
type tokenError struct {
	problem tokenProblem
	login   string // tokenUnverified: the login that is not verified
	claim   string // tokenNoClaim: the claim that is missing
	msg     string
}

func (e *tokenError) Error() string { return e.msg }

// exchangeCode exchanges code (with the PKCE verifier pkce) at the
// provider, verifies the ID token and its nonce, and returns the login in
// its emailClaim, which the provider must have verified. Both the device
// login (verify) and the console sign-in (FinishSignIn) use it; an error is
// a *tokenError.
func (m *Manager) exchangeCode(ctx context.Context, oc *oauth2.Config, v *oidc.IDTokenVerifier, emailClaim, code, pkce, nonce string) (string, error) {
	if m.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, m.cfg.HTTPClient)
	}
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(pkce))
	if err != nil {
		return "", &tokenError{problem: tokenFailed, msg: "exchanging the code failed: " + redactErr(err)}
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", &tokenError{problem: tokenFailed, msg: "the token response has no id_token"}
	}
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		return "", &tokenError{problem: tokenFailed, msg: fmt.Sprintf("the ID token is not valid: %v", err)}
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return "", &tokenError{problem: tokenWrongNonce, msg: "the ID token was made for another sign-in (nonce mismatch)"}
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return "", &tokenError{problem: tokenFailed, msg: fmt.Sprintf("reading the ID token's claims: %v", err)}
	}
	login, _ := claims[emailClaim].(string)
	if login == "" {
		return "", &tokenError{problem: tokenNoClaim, claim: emailClaim,
			msg: fmt.Sprintf("the ID token has no %q claim (hint: check login.oidc.emailClaim and the scopes)", emailClaim)}
	}
	if verified, _ := claims["email_verified"].(bool); !verified {
		return "", &tokenError{problem: tokenUnverified, login: login, msg: "the provider has not verified " + login}
	}
	return login, nil
}
