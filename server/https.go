package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
	"github.com/tailplane/tailplane/acmedns"
	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/schema"
)

// startCertDNS starts what publishes nodes' ACME DNS-01 records, when
// configured: the embedded DNS server on cfg.DNSListen (for the served
// tailnet's domain unless cfg.DNSServer.Zone says otherwise), or the
// external provider of cfg.DNSProvider; and the Publisher in front of it,
// which control's /machine/set-dns uses. Neither configured leaves s.cert
// nil, and set-dns is refused. served is the tailnet served at start.
func (s *Server) startCertDNS(ctx context.Context, cfg Config, served *schema.Tailnet) error {
	var provider acmedns.Provider
	switch {
	case cfg.DNSListen != "" && cfg.DNSProvider.Kind != "":
		return errors.New("server: DNSListen (the embedded DNS server) and DNSProvider (an external one) both publish ACME challenges; choose one")
	case cfg.DNSListen != "":
		sc := cfg.DNSServer
		sc.Addr = cfg.DNSListen
		s.dnsFollows = sc.Zone == ""
		if s.dnsFollows {
			sc.Zone = served.Settings.WithDefaults().Domain
		}
		if sc.Logf == nil {
			sc.Logf = cfg.Logf
		}
		srv, err := acmedns.NewServer(ctx, sc)
		if err != nil {
			return err
		}
		s.dns = srv
		provider = srv
		cfg.Logf("embedded DNS server for ACME challenges on %s (udp and tcp), authoritative for %s", srv.Addr(), srv.Zone())
	case cfg.DNSProvider.Kind != "":
		p, err := acmedns.NewProvider(ctx, cfg.DNSProvider)
		if err != nil {
			return err
		}
		provider = p
		cfg.Logf("ACME challenges are published with the %s DNS provider", cfg.DNSProvider.Kind)
	default:
		return nil
	}
	pub, err := acmedns.NewPublisher(acmedns.PublisherConfig{Provider: provider, Logf: cfg.Logf})
	if err != nil {
		return err
	}
	s.cert = pub
	return nil
}

// certDNS is what control publishes set-dns records with; a nil
// interface (not a nil *Publisher) when none is configured.
func (s *Server) certDNS() control.ChallengePublisher {
	switch {
	case s.cert == nil:
		return nil
	case s.dns != nil && !s.dnsFollows:
		return &cnameTarget{pub: s.cert, zone: s.dns.Zone(), domain: func() string { return s.ctrl.Tailnet().Settings.WithDefaults().Domain }}
	}
	return s.cert
}

// cnameTarget publishes challenges in an embedded DNS server whose zone
// (Config.DNSServer.Zone) is not the tailnet domain: the parent zone
// points each node's challenge name there with a CNAME (docs/https.md),
// so _acme-challenge.<node>.<tailnet domain> is published as
// _acme-challenge.<node>.<zone>. Names already inside the zone (the zone
// is the domain or a parent of it) are published as they are.
type cnameTarget struct {
	pub    *acmedns.Publisher
	zone   string        // canonical, with trailing dot
	domain func() string // the served tailnet domain
}

func (c *cnameTarget) Set(ctx context.Context, name, value string) error {
	fqdn := dns.CanonicalName(name)
	if !dns.IsSubDomain(c.zone, fqdn) {
		suffix := "." + dns.CanonicalName(c.domain())
		if host, ok := strings.CutSuffix(fqdn, suffix); ok {
			fqdn = host + "." + c.zone
		}
	}
	return c.pub.Set(ctx, fqdn, value)
}

// DNSAddr is the embedded DNS server's address (UDP and TCP); empty
// without Config.DNSListen.
func (s *Server) DNSAddr() string {
	if s.dns == nil {
		return ""
	}
	return s.dns.Addr()
}

// followDNS moves an embedded DNS server that follows the tailnet domain
// to the domain of p, just installed, and warns when p turns dns.https on
// while nothing publishes the challenges.
func (in installer) followDNS(p *control.Prepared) {
	if p.Tailnet().DNS.HTTPS && !in.publishes {
		in.logf("dns.https is on, but this server publishes no ACME challenges: tailscale cert fails until it runs with --dns-listen or --dns-provider (docs/https.md)")
	}
	if in.dns == nil {
		return
	}
	domain := p.Tailnet().Settings.WithDefaults().Domain
	old := in.dns.Zone()
	if err := in.dns.SetZone(domain); err != nil {
		// The schema validated the domain, so this is a bug; the config
		// is served all the same, only certificates fail.
		in.logf("embedded DNS server: cannot serve the new tailnet domain %q: %v", domain, err)
	} else if now := in.dns.Zone(); now != old {
		in.logf("embedded DNS server: now authoritative for %s (the tailnet domain), no longer for %s", now, old)
	}
}

// closeCertDNS deletes the records still published, then stops the
// embedded DNS server.
func (s *Server) closeCertDNS() error {
	var errs []error
	if s.cert != nil {
		errs = append(errs, s.cert.Close())
	}
	if s.dns != nil {
		errs = append(errs, s.dns.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("server: stopping the ACME challenge DNS: %w", err)
	}
	return nil
}
