package server

import (
	"context"
	"strings"

	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/login"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

// startLogin makes the interactive login manager for the server at
// baseURL, set to the applied tailnet's login.oidc. A provider that cannot
// be reached now is not fatal: logins show an error page and try it again.
func startLogin(ctx context.Context, cfg Config, st *store.Store, baseURL string, applied *schema.Tailnet, lookup func(context.Context, string) (string, bool)) (*login.Manager, error) {
	m, err := login.New(ctx, login.Config{
		BaseURL: baseURL, ClientSecret: cfg.OIDCClientSecret, LookupUser: lookup, Logf: cfg.Logf,
		Store: st, // pending logins are shared by the replicas
	})
	if err != nil {
		return nil, err
	}
	if err := m.SetOIDC(ctx, applied.Login.OIDC); err != nil {
		cfg.Logf("%v (logins show an error page until the provider answers)", err)
	}
	return m, nil
}

// lookupUser finds login among the served tailnet's users, ignoring case
// (email addresses from providers vary in case), and returns the declared
// spelling.
func (s *Server) lookupUser(_ context.Context, name string) (string, bool) {
	users := s.ctrl.Tailnet().Users
	if _, ok := users[name]; ok {
		return name, true
	}
	for declared := range users {
		if strings.EqualFold(declared, name) {
			return declared, true
		}
	}
	return "", false
}

// followLogin hands the login manager the login.oidc of p, just
// installed, and the file declaring its users, for the refused-user page.
func (in installer) followLogin(ctx context.Context, p *control.Prepared) {
	t := p.Tailnet()
	in.lm.SetUsersFile(t.Source.Pos("users").File) // "" without a source: "the config repository"
	if err := in.lm.SetOIDC(ctx, t.Login.OIDC); err != nil {
		in.logf("%v (logins show an error page until the provider answers)", err)
	}
}
