package server

import (
	"context"

	"github.com/tailplane/tailplane/acmedns"
	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/login"
)

// installer is the coordination server as the pipeline sees it: control,
// plus what follows each installed revision — the login manager gets its
// login.oidc, and an embedded DNS server that follows the tailnet domain
// moves to its domain.
type installer struct {
	*control.Server
	lm        *login.Manager
	dns       *acmedns.Server // nil unless it follows the domain
	publishes bool            // DNSListen or DNSProvider is set
	logf      func(format string, args ...any)
}

func (s *Server) installer(cfg Config) installer {
	in := installer{Server: s.ctrl, lm: s.lm, publishes: s.cert != nil, logf: cfg.Logf}
	if s.dnsFollows {
		in.dns = s.dns
	}
	return in
}

// Install serves p, then hands it to what follows the served revision.
func (in installer) Install(ctx context.Context, p *control.Prepared) error {
	if err := in.Server.Install(ctx, p); err != nil {
		return err
	}
	in.followLogin(ctx, p)
	in.followDNS(p)
	return nil
}
