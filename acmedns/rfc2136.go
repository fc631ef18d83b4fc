package acmedns

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"
)

// RFC2136 sets TXT records by RFC 2136 dynamic update, signed with TSIG.
// It implements Provider.
type RFC2136 struct {
	cfg RFC2136Config
}

// NewRFC2136 validates cfg and returns the provider.
func NewRFC2136(cfg RFC2136Config) (*RFC2136, error) {
	if cfg.Server == "" {
		return nil, errors.New("acmedns: rfc2136: Server is empty; set it to the primary's host:port")
	}
	if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
		cfg.Server = net.JoinHostPort(cfg.Server, "53")
	}
	if err := cfg.Key.check(); err != nil {
		return nil, fmt.Errorf("acmedns: rfc2136: %w", err)
	}
	if cfg.Zone != "" {
		cfg.Zone = dns.CanonicalName(cfg.Zone)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &RFC2136{cfg: cfg}, nil
}

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// SetTXT adds value to the TXT set at name.
func (p *RFC2136) SetTXT(ctx context.Context, name, value string) error {
	return p.update(ctx, name, value, true)
}

// DeleteTXT removes value from the TXT set at name.
func (p *RFC2136) DeleteTXT(ctx context.Context, name, value string) error {
	return p.update(ctx, name, value, false)
}

func (p *RFC2136) update(ctx context.Context, name, value string, add bool) error {
	c, err := challengeName(name)
	if err != nil {
		return err
	}
	zone := p.cfg.Zone
	if zone == "" {
		if zone, err = p.findZone(ctx, c); err != nil {
			return err
		}
	}
	if !dns.IsSubDomain(zone, c) {
		return fmt.Errorf("acmedns: rfc2136: %s is outside the zone %s", c, zone)
	}
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: c, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: uint32(p.cfg.TTL.Seconds())}, Txt: []string{value}}
	m := new(dns.Msg)
	m.SetUpdate(zone)
	verb := "adding"
	if add {
		m.Insert([]dns.RR{rr})
	} else {
		verb = "removing"
		m.Remove([]dns.RR{rr})
	}
	resp, err := p.exchange(ctx, m, true)
	if err != nil {
		return fmt.Errorf("acmedns: rfc2136: %s TXT %s at %s: %w", verb, c, p.cfg.Server, err)
	}
	if resp.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("acmedns: rfc2136: %s TXT %s at %s: server answered %s (check the TSIG key %s and that the server allows it to update %s)",
			verb, c, p.cfg.Server, dns.RcodeToString[resp.Rcode], p.cfg.Key.Name, zone)
	}
	return nil
}

// findZone asks the server for the SOA of name; the owner of the SOA in the
// answer or authority section is the zone.
func (p *RFC2136) findZone(ctx context.Context, name string) (string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeSOA)
	resp, err := p.exchange(ctx, m, false)
	if err != nil {
		return "", fmt.Errorf("acmedns: rfc2136: finding the zone of %s at %s: %w (set the zone explicitly)", name, p.cfg.Server, err)
	}
	for _, rr := range append(resp.Answer, resp.Ns...) {
		if soa, ok := rr.(*dns.SOA); ok {
			return dns.CanonicalName(soa.Hdr.Name), nil
		}
	}
	return "", fmt.Errorf("acmedns: rfc2136: %s did not answer an SOA for %s (%s); set the zone explicitly", p.cfg.Server, name, dns.RcodeToString[resp.Rcode])
}

func (p *RFC2136) exchange(ctx context.Context, m *dns.Msg, sign bool) (*dns.Msg, error) {
	cl := &dns.Client{Net: "tcp", Timeout: p.cfg.Timeout}
	if sign {
		alg := tsigAlgorithms[p.cfg.Key.Algorithm]
		m.SetTsig(p.cfg.Key.Name, alg, 300, time.Now().Unix())
		cl.TsigSecret = map[string]string{p.cfg.Key.Name: p.cfg.Key.Secret.Reveal()}
	}
	resp, _, err := cl.ExchangeContext(ctx, m, p.cfg.Server)
	return resp, err
}
