package testkit

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// LookupTXT asks the DNS server at addr (host:port) for the TXT values at
// name over TCP and returns them in the order of the answer.
func LookupTXT(t testing.TB, addr, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	resp, _, err := (&dns.Client{Net: "tcp", Timeout: 10 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatalf("TXT %s at %s: %v", name, addr, err)
	}
	var vals []string
	for _, rr := range resp.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			vals = append(vals, strings.Join(txt.Txt, ""))
		}
	}
	return vals
}
