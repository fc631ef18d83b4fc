// Package acmedns publishes ACME DNS-01 challenge records for tailnet nodes:
// an embedded authoritative server for the tailnet domain, or an external DNS
// provider (RFC 2136 dynamic update, Cloudflare, Route53) behind the same
// small Provider interface. A Publisher in front of either keeps each
// record for a short time, limits how many one name gets, and deletes
// them; control's /machine/set-dns publishes through it (docs/https.md).
//
// The embedded server answers only SOA and NS for its zone and the pending
// _acme-challenge TXT records. Node addresses are never published.
package acmedns

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// ChallengeLabel is the first label of every name the embedded server
// publishes a TXT record for (RFC 8555 section 8.4).
const ChallengeLabel = "_acme-challenge"

// Defaults for the zero values of ServerConfig.
const (
	DefaultTTL        = 60 * time.Second
	DefaultExpiry     = 10 * time.Minute
	DefaultMaxRecords = 10000
)

// ServerConfig configures the embedded authoritative server.
type ServerConfig struct {
	// Zone is the tailnet domain the server is authoritative for, for
	// example "ts.example.com". It is required.
	Zone string
	// Addr is the host:port both the UDP and the TCP listener bind to;
	// empty means ":53". Port 0 picks a free port shared by both.
	Addr string
	// NS lists the zone's name servers as published in its NS set and the
	// SOA's MNAME; empty means "ns.<zone>".
	NS []string
	// NSAddrs are the addresses published as A/AAAA for the name servers in
	// NS that are inside Zone (the glue the parent also holds); empty means
	// none are published.
	NSAddrs []netip.Addr
	// TTL is the TTL of every answer and the SOA's negative-caching TTL;
	// zero means DefaultTTL.
	TTL time.Duration
	// Expiry is how long a record set by SetTXT is served unless deleted
	// earlier; zero means DefaultExpiry.
	Expiry time.Duration
	// MaxRecords bounds the pending records kept in memory; zero means
	// DefaultMaxRecords.
	MaxRecords int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logf logs listener errors; nil means log.Printf.
	Logf func(format string, args ...any)
}

// Server is the embedded authoritative DNS server. It implements Provider.
type Server struct {
	cfg ServerConfig
	udp *dns.Server
	tcp *dns.Server
	wg  sync.WaitGroup

	mu      sync.Mutex                      // guards the fields below
	zone    string                          // canonical, with trailing dot
	ns      []string                        // canonical
	records map[string]map[string]time.Time // name -> TXT value -> expiry
	serial  uint32
	closed  bool
}

// NewServer validates cfg, binds its UDP and TCP listeners and starts
// serving. Close stops it.
func NewServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.Zone == "" {
		return nil, errors.New("acmedns: ServerConfig.Zone is empty; set it to the tailnet domain")
	}
	zone := dns.CanonicalName(cfg.Zone)
	if _, ok := dns.IsDomainName(zone); !ok {
		return nil, fmt.Errorf("acmedns: zone %q is not a domain name", cfg.Zone)
	}
	if cfg.Addr == "" {
		cfg.Addr = ":53"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = DefaultExpiry
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = DefaultMaxRecords
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	s := &Server{cfg: cfg, records: map[string]map[string]time.Time{}}
	s.serial = uint32(cfg.Now().Unix())
	if err := s.SetZone(zone); err != nil {
		return nil, err
	}
	pc, ln, err := listen(ctx, cfg.Addr)
	if err != nil {
		return nil, err
	}
	h := dns.HandlerFunc(s.serveDNS)
	// Shutdown fails on a server that has not started yet, so wait for
	// both before returning.
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: notify}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				s.cfg.Logf("acmedns: DNS server on %s stopped: %v", cfg.Addr, err)
			}
		}()
	}
	<-started
	<-started
	return s, nil
}

// listen binds UDP and TCP on the same address; with port 0 it retries until
// both get the same free port.
func listen(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	var lastErr error
	for range 10 {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("acmedns: listening on udp %s: %w (is another DNS server running there?)", addr, err)
		}
		ln, err := lc.Listen(ctx, "tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
		if _, port, _ := net.SplitHostPort(addr); port != "0" {
			break
		}
	}
	return nil, nil, fmt.Errorf("acmedns: listening on tcp %s: %w", addr, lastErr)
}

// Addr returns the address the server listens on (UDP and TCP).
func (s *Server) Addr() string { return s.udp.PacketConn.LocalAddr().String() }

// Zone returns the canonical zone name, with a trailing dot.
func (s *Server) Zone() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.zone
}

// SetZone makes the server authoritative for zone instead (when the
// tailnet domain changes). Pending records outside the new zone are
// dropped; with ServerConfig.NS empty the name server becomes ns.<zone>.
func (s *Server) SetZone(zone string) error {
	c := dns.CanonicalName(zone)
	if _, ok := dns.IsDomainName(c); !ok || c == "." {
		return fmt.Errorf("acmedns: zone %q is not a domain name", zone)
	}
	var ns []string
	for _, n := range s.cfg.NS {
		nc := dns.CanonicalName(n)
		if _, ok := dns.IsDomainName(nc); !ok || nc == "." {
			return fmt.Errorf("acmedns: name server %q is not a domain name", n)
		}
		ns = append(ns, nc)
	}
	if len(ns) == 0 {
		ns = []string{"ns." + c}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c == s.zone {
		return nil
	}
	s.zone, s.ns = c, ns
	for name := range s.records {
		if !dns.IsSubDomain(c, name) {
			delete(s.records, name)
		}
	}
	s.serial++
	return nil
}

// Close stops both listeners and waits for them to finish.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := errors.Join(s.udp.ShutdownContext(ctx), s.tcp.ShutdownContext(ctx))
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("acmedns: stopping DNS server on %s: %w", s.cfg.Addr, err)
	}
	return nil
}

// checkName returns the canonical form of name if the server may publish a
// TXT record there: inside the zone and starting with ChallengeLabel.
func (s *Server) checkName(name string) (string, error) {
	s.mu.Lock()
	zone := s.zone
	s.mu.Unlock()
	c := dns.CanonicalName(name)
	if _, ok := dns.IsDomainName(c); !ok {
		return "", fmt.Errorf("acmedns: %q is not a domain name", name)
	}
	if !strings.HasPrefix(c, ChallengeLabel+".") {
		return "", fmt.Errorf("acmedns: %q does not start with %s; only ACME challenge records are published", name, ChallengeLabel)
	}
	if !dns.IsSubDomain(zone, c) || c == zone {
		return "", fmt.Errorf("acmedns: %q is outside the zone %s this DNS server answers for", name, zone)
	}
	return c, nil
}

// SetTXT publishes value as a TXT record at name until DeleteTXT removes it
// or ServerConfig.Expiry passes. Setting the same value again renews it.
func (s *Server) SetTXT(ctx context.Context, name, value string) error {
	c, err := s.checkName(name)
	if err != nil {
		return err
	}
	if err := CheckTXTValue(value); err != nil {
		return err
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	vals := s.records[c]
	if _, ok := vals[value]; !ok && s.countLocked() >= s.cfg.MaxRecords {
		return fmt.Errorf("acmedns: %d challenge records are pending already; try again when some expire", s.cfg.MaxRecords)
	}
	if vals == nil {
		vals = map[string]time.Time{}
		s.records[c] = vals
	}
	vals[value] = now.Add(s.cfg.Expiry)
	s.serial++
	return nil
}

// DeleteTXT removes the TXT record value at name. Removing a record that is
// not there is not an error.
func (s *Server) DeleteTXT(ctx context.Context, name, value string) error {
	c, err := s.checkName(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[c][value]; ok {
		delete(s.records[c], value)
		if len(s.records[c]) == 0 {
			delete(s.records, c)
		}
		s.serial++
	}
	return nil
}

// CheckTXTValue reports why v cannot be a challenge record's TXT value:
// it must fit one TXT character-string and be printable ASCII without
// spaces (ACME tokens are base64url).
func CheckTXTValue(v string) error {
	if v == "" || len(v) > 255 {
		return fmt.Errorf("acmedns: TXT value has %d bytes; want 1 to 255", len(v))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return fmt.Errorf("acmedns: TXT value has byte %#x at %d; want printable ASCII without spaces", v[i], i)
		}
	}
	return nil
}

func (s *Server) expireLocked(now time.Time) {
	for name, vals := range s.records {
		for v, exp := range vals {
			if !now.Before(exp) {
				delete(vals, v)
				s.serial++
			}
		}
		if len(vals) == 0 {
			delete(s.records, name)
		}
	}
}

func (s *Server) countLocked() int {
	n := 0
	for _, vals := range s.records {
		n += len(vals)
	}
	return n
}
