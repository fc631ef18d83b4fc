package main

import (
	"fmt"
	"net/netip"

	"github.com/spf13/pflag"
	"github.com/tailplane/tailplane/acmedns"
	"github.com/tailplane/tailplane/server"
)

// Environment variables the DNS providers' secrets come from when no file
// is given.
const (
	envTSIGKey         = "TAILPLANE_RFC2136_TSIG_KEY"
	envCloudflareToken = "TAILPLANE_CLOUDFLARE_API_TOKEN"
)

// httpsFlags are serve's flags for publishing nodes' ACME DNS-01 records
// (dns.https, docs/https.md): the embedded DNS server or one external
// provider. Secrets come from files or the environment, never flag values.
type httpsFlags struct {
	dnsListen  string
	dnsZone    string
	dnsNS      []string
	dnsNSAddrs []string
	provider   string

	rfc2136Server, rfc2136Zone, rfc2136KeyFile string
	cfZoneID, cfZone, cfTokenFile              string
	r53ZoneID, r53Region                       string
}

func (h *httpsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&h.dnsListen, "dns-listen", "", "UDP and TCP address of the embedded DNS server that answers ACME challenges for the tailnet domain, e.g. :53 (default: none)")
	fs.StringVar(&h.dnsZone, "dns-zone", "", "zone the embedded DNS server is authoritative for (default: the tailnet domain, followed when it changes)")
	fs.StringSliceVar(&h.dnsNS, "dns-ns", nil, "name servers the embedded DNS server publishes for its zone (default: ns.<zone>)")
	fs.StringSliceVar(&h.dnsNSAddrs, "dns-ns-addr", nil, "IP addresses published for the in-zone name servers (the glue; default: none)")
	fs.StringVar(&h.provider, "dns-provider", "", "publish ACME challenges with an external DNS provider instead: rfc2136, cloudflare or route53")
	fs.StringVar(&h.rfc2136Server, "rfc2136-server", "", "with --dns-provider=rfc2136: the primary DNS server's host[:port]")
	fs.StringVar(&h.rfc2136Zone, "rfc2136-zone", "", "with --dns-provider=rfc2136: the zone to update (default: asked from the server)")
	fs.StringVar(&h.rfc2136KeyFile, "rfc2136-tsig-key-file", "", "with --dns-provider=rfc2136: file holding the TSIG key as [algorithm:]name:base64-secret (default: $"+envTSIGKey+")")
	fs.StringVar(&h.cfZoneID, "cloudflare-zone-id", "", "with --dns-provider=cloudflare: the zone's ID (or --cloudflare-zone)")
	fs.StringVar(&h.cfZone, "cloudflare-zone", "", "with --dns-provider=cloudflare: the zone's name, to look its ID up")
	fs.StringVar(&h.cfTokenFile, "cloudflare-token-file", "", "with --dns-provider=cloudflare: file holding the API token (default: $"+envCloudflareToken+")")
	fs.StringVar(&h.r53ZoneID, "route53-zone-id", "", "with --dns-provider=route53: the hosted zone ID (credentials: the AWS SDK's default chain, e.g. $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY)")
	fs.StringVar(&h.r53Region, "route53-region", "", "with --dns-provider=route53: the signing region (default us-east-1)")
}

// apply fills the DNS settings of cfg from the flags, reading the secret
// files they name.
func (h *httpsFlags) apply(cfg *server.Config, env *cliEnv) error {
	if h.dnsListen != "" && h.provider != "" {
		return fmt.Errorf("--dns-listen (the embedded DNS server) and --dns-provider %s both publish ACME challenges; choose one", h.provider)
	}
	cfg.DNSListen = h.dnsListen
	cfg.DNSServer = acmedns.ServerConfig{Zone: h.dnsZone, NS: h.dnsNS}
	for _, s := range h.dnsNSAddrs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("--dns-ns-addr %q is not an IP address", s)
		}
		cfg.DNSServer.NSAddrs = append(cfg.DNSServer.NSAddrs, a)
	}
	p := acmedns.ProviderConfig{Kind: h.provider}
	switch h.provider {
	case "":
	case acmedns.KindRFC2136:
		raw, err := readSecretFile(h.rfc2136KeyFile, envTSIGKey, env.getenv)
		if err != nil {
			return fmt.Errorf("--rfc2136-tsig-key-file: %w", err)
		}
		if raw == nil {
			return fmt.Errorf("--dns-provider rfc2136 needs a TSIG key: --rfc2136-tsig-key-file FILE or $%s", envTSIGKey)
		}
		key, err := acmedns.ParseTSIGKey(string(raw))
		if err != nil {
			return fmt.Errorf("--rfc2136-tsig-key-file: %w", err)
		}
		p.RFC2136 = acmedns.RFC2136Config{Server: h.rfc2136Server, Zone: h.rfc2136Zone, Key: key}
	case acmedns.KindCloudflare:
		tok, err := readSecretFile(h.cfTokenFile, envCloudflareToken, env.getenv)
		if err != nil {
			return fmt.Errorf("--cloudflare-token-file: %w", err)
		}
		if tok == nil {
			return fmt.Errorf("--dns-provider cloudflare needs an API token: --cloudflare-token-file FILE or $%s", envCloudflareToken)
		}
		p.Cloudflare = acmedns.CloudflareConfig{APIToken: acmedns.Secret(tok), ZoneID: h.cfZoneID, Zone: h.cfZone}
	case acmedns.KindRoute53:
		p.Route53 = acmedns.Route53Config{HostedZoneID: h.r53ZoneID, Region: h.r53Region}
	default:
		return fmt.Errorf("--dns-provider %q is not one of rfc2136, cloudflare, route53", h.provider)
	}
	cfg.DNSProvider = p
	return nil
}
