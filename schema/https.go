package schema

import (
	"fmt"
	"strings"
)

// privateSuffixes are names no public certificate authority issues for:
// special-use names (RFC 6761, RFC 6762, RFC 7686, RFC 9476, RFC 8375) and
// the TLDs ICANN reserved for private use or that are commonly used so.
var privateSuffixes = []string{
	"local", "localhost", "internal", "test", "invalid", "example", "onion", "alt",
	"home.arpa", "arpa", "lan", "home", "corp", "intranet", "private",
}

// checkHTTPS checks what dns.https needs: a tailnet domain that is a real
// DNS name (tailplane's embedded DNS server or a DNS provider answers the
// ACME CA's queries for it), and MagicDNS, without which peers cannot
// reach a node by the name its certificate is for. domainSet says whether
// tailnet.domain was written (else the default, which is never public).
func (d *decoder) checkHTTPS(t *Tailnet, domainSet bool) {
	domain := t.Settings.Domain
	path := "dns.https"
	if domainSet {
		path = "tailnet.domain"
	}
	if msg := publicDomainProblem(domain); msg != "" {
		d.errorf(path, `set tailnet.domain to a domain you own whose DNS tailplane (serve --dns-listen) or your DNS provider answers, such as "ts.example.com"; see docs/https.md`,
			"dns.https needs a tailnet domain a certificate authority can check, but %q %s", domain, msg)
	}
	if !t.DNS.MagicDNS {
		d.warnf("dns.https", "turn dns.magicDNS on, or peers cannot reach nodes by the names their certificates are for",
			"dns.https is on but dns.magicDNS is off")
	}
}

// publicDomainProblem says why no public CA would issue certificates under
// domain, or returns "".
func publicDomainProblem(domain string) string {
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return "is a single label; a CA needs a name under a public suffix"
	}
	for _, suf := range privateSuffixes {
		if domain == suf || strings.HasSuffix(domain, "."+suf) {
			return fmt.Sprintf("is under .%s, for which no CA issues certificates", suf)
		}
	}
	tld := labels[len(labels)-1]
	if strings.Trim(tld, "0123456789") == "" {
		return "ends in a numeric label; that is not a DNS name under a public suffix"
	}
	return ""
}
