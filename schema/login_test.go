package schema

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLoginChecks covers the `login` key: what it decodes to and every
// check lint reports, each with its file:line:col.
func TestLoginChecks(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		want  *OIDC
		diags []string
	}{
		{"absent", `{}`, nil, nil},
		{"defaults", `{"login": {"oidc": {"issuer": "https://id.example.com", "clientID": "tp"}}}`,
			&OIDC{Issuer: "https://id.example.com", ClientID: "tp", Scopes: []string{"openid", "email", "profile"}, EmailClaim: "email"}, nil},
		{"all keys", `{"login": {"oidc": {"issuer": "https://id.example.com/realms/x", "clientID": "tp", "scopes": ["openid", "email"], "emailClaim": "upn"}}}`,
			&OIDC{Issuer: "https://id.example.com/realms/x", ClientID: "tp", Scopes: []string{"openid", "email"}, EmailClaim: "upn"}, nil},
		{"http loopback", `{"login": {"oidc": {"issuer": "http://127.0.0.1:5556", "clientID": "tp"}}}`,
			&OIDC{Issuer: "http://127.0.0.1:5556", ClientID: "tp", Scopes: []string{"openid", "email", "profile"}, EmailClaim: "email"}, nil},
		{"http remote", `{"login": {"oidc": {"issuer": "http://id.example.com", "clientID": "tp"}}}`,
			&OIDC{ClientID: "tp", Scopes: []string{"openid", "email", "profile"}, EmailClaim: "email"}, []string{
				`a.hujson:1:21: error: login.oidc.issuer: invalid issuer "http://id.example.com": http is allowed only for a loopback host; use https (hint: write the provider's issuer URL, e.g. "https://accounts.google.com")`,
			}},
		{"issuer not a URL", `{"login": {"oidc": {"issuer": "id.example.com", "clientID": "tp"}}}`,
			&OIDC{ClientID: "tp", Scopes: []string{"openid", "email", "profile"}, EmailClaim: "email"}, []string{
				`a.hujson:1:21: error: login.oidc.issuer: invalid issuer "id.example.com": not an absolute http(s) URL (hint: write the provider's issuer URL, e.g. "https://accounts.google.com")`,
			}},
		{"empty clientID", `{"login": {"oidc": {"issuer": "https://id.example.com", "clientID": ""}}}`,
			&OIDC{Issuer: "https://id.example.com", Scopes: []string{"openid", "email", "profile"}, EmailClaim: "email"}, []string{
				`a.hujson:1:57: error: login.oidc.clientID: clientID is empty (hint: copy the client ID from the provider's app registration)`,
			}},
		{"missing keys", `{"login": {"oidc": {}}}`,
			&OIDC{Scopes: []string{"openid", "email", "profile"}, EmailClaim: "email"}, []string{
				`a.hujson:1:12: error: login.oidc: login.oidc has no issuer (hint: add "issuer": "https://..." (the provider's issuer URL))`,
				`a.hujson:1:12: error: login.oidc: login.oidc has no clientID (hint: add "clientID": the client ID registered at the provider)`,
			}},
		{"scopes without openid", `{"login": {"oidc": {"issuer": "https://id.example.com", "clientID": "tp", "scopes": ["email"]}}}`,
			&OIDC{Issuer: "https://id.example.com", ClientID: "tp", Scopes: []string{"email"}, EmailClaim: "email"}, []string{
				`a.hujson:1:75: error: login.oidc.scopes: scopes do not include "openid" (hint: add "openid": OpenID Connect requires it)`,
			}},
		{"typo", `{"login": {"oidc": {"issuer": "https://id.example.com", "clientId": "tp"}}}`,
			&OIDC{Issuer: "https://id.example.com", Scopes: []string{"openid", "email", "profile"}, EmailClaim: "email"}, []string{
				`a.hujson:1:12: error: login.oidc: login.oidc has no clientID (hint: add "clientID": the client ID registered at the provider)`,
				`a.hujson:1:57: error: login.oidc.clientId: unknown key "clientId" (hint: did you mean "clientID"?)`,
			}},
		{"unknown provider", `{"login": {"saml": {}}}`, nil, []string{
			`a.hujson:1:12: error: login.saml: unknown key "saml" (hint: allowed keys are oidc)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn, ds := LoadBytes(context.Background(), "a.hujson", []byte(tt.doc))
			if tn == nil {
				t.Fatalf("nil Tailnet; diagnostics:\n%v", ds)
			}
			if diff := cmp.Diff(tt.diags, render(ds)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, tn.Login.OIDC); diff != "" {
				t.Errorf("login.oidc (-want +got):\n%s", diff)
			}
		})
	}
}
