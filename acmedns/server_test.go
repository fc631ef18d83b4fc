package acmedns

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// fakeClock is a settable clock for record expiry.
type fakeClock struct {
	mu sync.Mutex // guards the fields below
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func startServer(t *testing.T, clock *fakeClock) *Server {
	t.Helper()
	s, err := NewServer(t.Context(), ServerConfig{
		Zone:    "TS.Example.test",
		Addr:    "127.0.0.1:0",
		NS:      []string{"ns1.ts.example.test", "dns.other.test"},
		NSAddrs: nil,
		Now:     clock.Now,
		Logf:    t.Logf,
	})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// result is the part of a DNS answer the tests compare.
type result struct {
	Rcode  string
	AA     bool
	Answer []string
	Ns     []string
}

func summarize(m *dns.Msg) result {
	r := result{Rcode: dns.RcodeToString[m.Rcode], AA: m.Authoritative}
	for _, rr := range m.Answer {
		r.Answer = append(r.Answer, rrString(rr))
	}
	for _, rr := range m.Ns {
		r.Ns = append(r.Ns, rrString(rr))
	}
	slices.Sort(r.Answer)
	return r
}

// rrString prints rr without the SOA serial, which changes with every record.
func rrString(rr dns.RR) string {
	if soa, ok := rr.(*dns.SOA); ok {
		c := *soa
		c.Serial = 0
		rr = &c
	}
	return strings.ReplaceAll(rr.String(), "\t", " ")
}

func query(t *testing.T, network, addr, name string, qtype uint16) result {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	c := &dns.Client{Net: network, Timeout: 10 * time.Second}
	resp, _, err := c.ExchangeContext(context.Background(), m, addr)
	if err != nil {
		t.Fatalf("%s query %s %s at %s: %v", network, name, dns.TypeToString[qtype], addr, err)
	}
	return summarize(resp)
}

const (
	soaRR = "ts.example.test. 60 IN SOA ns1.ts.example.test. hostmaster.ts.example.test. 0 3600 600 86400 60"
	chal  = "_acme-challenge.node1.ts.example.test."
)

func TestServerAnswers(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := startServer(t, clock)
	ctx := t.Context()
	if err := s.SetTXT(ctx, "_acme-challenge.Node1.ts.example.test", "token-b"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTXT(ctx, chal, "token-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTXT(ctx, "_acme-challenge.node2.ts.example.test.", "gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTXT(ctx, "_acme-challenge.node2.ts.example.test.", "gone"); err != nil {
		t.Fatal(err)
	}
	nodata := result{Rcode: "NOERROR", AA: true, Ns: []string{soaRR}}
	nxdomain := result{Rcode: "NXDOMAIN", AA: true, Ns: []string{soaRR}}
	tests := []struct {
		name  string
		qname string
		qtype uint16
		want  result
	}{
		{"SOA", "ts.example.test", dns.TypeSOA, result{Rcode: "NOERROR", AA: true, Answer: []string{soaRR}}},
		{"NS", "TS.EXAMPLE.TEST", dns.TypeNS, result{Rcode: "NOERROR", AA: true, Answer: []string{
			"ts.example.test. 60 IN NS dns.other.test.",
			"ts.example.test. 60 IN NS ns1.ts.example.test.",
		}}},
		{"apex A is NODATA", "ts.example.test", dns.TypeA, nodata},
		{"TXT present", chal, dns.TypeTXT, result{Rcode: "NOERROR", AA: true, Answer: []string{
			chal + " 60 IN TXT \"token-a\"",
			chal + " 60 IN TXT \"token-b\"",
		}}},
		{"TXT name, type A", chal, dns.TypeA, nodata},
		{"TXT deleted", "_acme-challenge.node2.ts.example.test", dns.TypeTXT, nxdomain},
		{"TXT never set", "_acme-challenge.node3.ts.example.test", dns.TypeTXT, nxdomain},
		{"node address never published", "node1.ts.example.test", dns.TypeA, nodata},
		{"node AAAA never published", "node1.ts.example.test", dns.TypeAAAA, nodata},
		{"unknown node", "node3.ts.example.test", dns.TypeA, nxdomain},
		{"NS host without addresses", "ns1.ts.example.test", dns.TypeA, nodata},
		{"outside zone", "example.test", dns.TypeSOA, result{Rcode: "REFUSED"}},
		{"other zone", "_acme-challenge.node1.other.test", dns.TypeTXT, result{Rcode: "REFUSED"}},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				got := query(t, network, s.Addr(), tt.qname, tt.qtype)
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("%s %s (-want +got):\n%s", tt.qname, dns.TypeToString[tt.qtype], diff)
				}
			})
		}
	}
}

func TestServerExpiry(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := startServer(t, clock)
	if err := s.SetTXT(t.Context(), chal, "old"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(DefaultExpiry / 2)
	if err := s.SetTXT(t.Context(), chal, "new"); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance time.Duration
		want    []string
	}{
		{0, []string{chal + " 60 IN TXT \"new\"", chal + " 60 IN TXT \"old\""}},
		{DefaultExpiry/2 - time.Second, []string{chal + " 60 IN TXT \"new\"", chal + " 60 IN TXT \"old\""}},
		{time.Second, []string{chal + " 60 IN TXT \"new\""}},
		{DefaultExpiry / 2, nil},
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		for _, network := range []string{"udp", "tcp"} {
			got := query(t, network, s.Addr(), chal, dns.TypeTXT)
			if diff := cmp.Diff(st.want, got.Answer); diff != "" {
				t.Errorf("step %d over %s: TXT answer (-want +got):\n%s", i, network, diff)
			}
		}
	}
}

func TestServerSetTXTRefuses(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	s := startServer(t, clock)
	tests := []struct {
		name, rr, value, wantErr string
	}{
		{"not a challenge name", "node1.ts.example.test", "v", "does not start with _acme-challenge"},
		{"outside zone", "_acme-challenge.node1.other.test", "v", "outside the zone"},
		{"empty value", chal, "", "want 1 to 255"},
		{"long value", chal, strings.Repeat("x", 256), "want 1 to 255"},
		{"space in value", chal, "a b", "printable ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.SetTXT(t.Context(), tt.rr, tt.value)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("SetTXT(%q, %q) = %v; want error containing %q", tt.rr, tt.value, err, tt.wantErr)
			}
		})
	}
}

func TestServerGlue(t *testing.T) {
	s, err := NewServer(t.Context(), ServerConfig{
		Zone:    "ts.example.test",
		Addr:    "127.0.0.1:0",
		NSAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")},
		Logf:    t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tt := range []struct {
		qtype uint16
		want  []string
	}{
		{dns.TypeA, []string{"ns.ts.example.test. 60 IN A 192.0.2.53"}},
		{dns.TypeAAAA, []string{"ns.ts.example.test. 60 IN AAAA 2001:db8::53"}},
	} {
		got := query(t, "udp", s.Addr(), "ns.ts.example.test", tt.qtype)
		if diff := cmp.Diff(tt.want, got.Answer); diff != "" {
			t.Errorf("ns %s (-want +got):\n%s", dns.TypeToString[tt.qtype], diff)
		}
	}
}

func TestNewServerErrors(t *testing.T) {
	if _, err := NewServer(t.Context(), ServerConfig{}); err == nil || !strings.Contains(err.Error(), "Zone is empty") {
		t.Errorf("NewServer(zero) = %v; want Zone is empty", err)
	}
	s := startServer(t, &fakeClock{t: time.Now()})
	_, err := NewServer(t.Context(), ServerConfig{Zone: "ts.example.test", Addr: s.Addr(), Logf: t.Logf})
	if err == nil || !strings.Contains(err.Error(), "listening on udp") {
		t.Errorf("NewServer on a used address = %v; want a listening error", err)
	}
}

func TestServerRefusesNonQueries(t *testing.T) {
	s := startServer(t, &fakeClock{t: time.Now()})
	upd := new(dns.Msg)
	upd.SetUpdate("ts.example.test.")
	upd.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: chal, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"x"}}})
	chaos := new(dns.Msg)
	chaos.SetQuestion("ts.example.test.", dns.TypeSOA)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	for _, tt := range []struct {
		name string
		msg  *dns.Msg
		want string
	}{
		{"dynamic update", upd, "NOTIMP"},
		{"class CHAOS", chaos, "REFUSED"},
	} {
		for _, network := range []string{"udp", "tcp"} {
			resp, _, err := (&dns.Client{Net: network, Timeout: 10 * time.Second}).Exchange(tt.msg.Copy(), s.Addr())
			if err != nil {
				t.Fatalf("%s over %s: %v", tt.name, network, err)
			}
			if got := dns.RcodeToString[resp.Rcode]; got != tt.want {
				t.Errorf("%s over %s: rcode %s; want %s", tt.name, network, got, tt.want)
			}
		}
	}
	if got := query(t, "udp", s.Addr(), chal, dns.TypeTXT); len(got.Answer) != 0 {
		t.Errorf("TXT after a refused update = %q; want none", got.Answer)
	}
}

func TestServerMaxRecords(t *testing.T) {
	s, err := NewServer(t.Context(), ServerConfig{Zone: "ts.example.test", Addr: "127.0.0.1:0", MaxRecords: 2, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, v := range []string{"a", "b", "b"} {
		if err := s.SetTXT(t.Context(), chal, v); err != nil {
			t.Fatalf("SetTXT %d (%s): %v", i, v, err)
		}
	}
	if err := s.SetTXT(t.Context(), chal, "c"); err == nil || !strings.Contains(err.Error(), "pending already") {
		t.Errorf("SetTXT over MaxRecords = %v; want a pending-already error", err)
	}
}
