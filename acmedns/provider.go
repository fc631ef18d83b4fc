package acmedns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Provider publishes and removes ACME DNS-01 TXT records. name is the full
// record name ("_acme-challenge.node.ts.example.com", with or without the
// trailing dot) and value the challenge token. SetTXT adds value to the
// record set at name without removing other values (a certificate for a name
// and its wildcard needs two at once); DeleteTXT removes only value, and
// deleting a value that is not there is not an error. Callers delete the
// record once the ACME order is done.
//
// *Server, *RFC2136, *Cloudflare and *Route53 implement Provider.
type Provider interface {
	SetTXT(ctx context.Context, name, value string) error
	DeleteTXT(ctx context.Context, name, value string) error
}

// Secret is a credential. It prints as "[redacted]" so that it never ends up
// in a log line or an error message by accident; use Reveal where the
// credential is handed to the API that needs it.
type Secret string

func (Secret) String() string   { return "[redacted]" }
func (Secret) GoString() string { return "[redacted]" }

// Reveal returns the credential itself.
func (s Secret) Reveal() string { return string(s) }

// Provider kinds for ProviderConfig.Kind.
const (
	KindEmbedded   = ""
	KindRFC2136    = "rfc2136"
	KindCloudflare = "cloudflare"
	KindRoute53    = "route53"
)

// ProviderConfig chooses an external DNS provider and holds its settings.
// It is filled from the server's flags and environment; credentials never
// come from Git.
type ProviderConfig struct {
	// Kind is one of KindRFC2136, KindCloudflare, KindRoute53; empty means
	// no external provider (the embedded Server answers itself).
	Kind       string
	RFC2136    RFC2136Config
	Cloudflare CloudflareConfig
	Route53    Route53Config
}

// NewProvider returns the external provider cfg chooses, or nil and no
// error when cfg.Kind is empty.
func NewProvider(ctx context.Context, cfg ProviderConfig) (Provider, error) {
	switch cfg.Kind {
	case KindEmbedded:
		return nil, nil
	case KindRFC2136:
		return NewRFC2136(cfg.RFC2136)
	case KindCloudflare:
		return NewCloudflare(cfg.Cloudflare)
	case KindRoute53:
		return NewRoute53(ctx, cfg.Route53)
	}
	return nil, fmt.Errorf("acmedns: unknown DNS provider %q; want %s, %s or %s", cfg.Kind, KindRFC2136, KindCloudflare, KindRoute53)
}

// challengeName checks that name is an ACME challenge name and returns it
// canonical, with the trailing dot.
func challengeName(name string) (string, error) {
	c := dns.CanonicalName(name)
	if _, ok := dns.IsDomainName(c); !ok {
		return "", fmt.Errorf("acmedns: %q is not a domain name", name)
	}
	if !strings.HasPrefix(c, ChallengeLabel+".") {
		return "", fmt.Errorf("acmedns: %q does not start with %s; only ACME challenge records are set", name, ChallengeLabel)
	}
	return c, nil
}

// TSIGKey is a TSIG key for RFC 2136 updates.
type TSIGKey struct {
	// Name is the key's name, as the DNS server knows it.
	Name string
	// Algorithm is a TSIG algorithm name such as "hmac-sha256"; empty means
	// hmac-sha256.
	Algorithm string
	// Secret is the base64 key.
	Secret Secret
}

var tsigAlgorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// ParseTSIGKey parses a key in the "[algorithm:]name:secret" form that
// dig -y, nsupdate -y and knsupdate -y use, for example
// "hmac-sha256:acme:c2VjcmV0". Errors never contain the secret.
func ParseTSIGKey(s string) (TSIGKey, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	var k TSIGKey
	switch len(parts) {
	case 2:
		k = TSIGKey{Name: parts[0], Secret: Secret(parts[1])}
	case 3:
		k = TSIGKey{Algorithm: parts[0], Name: parts[1], Secret: Secret(parts[2])}
	default:
		return TSIGKey{}, errors.New("acmedns: TSIG key has the wrong form; want [algorithm:]name:base64-secret")
	}
	if err := k.check(); err != nil {
		return TSIGKey{}, err
	}
	return k, nil
}

// check validates k and normalizes its fields.
func (k *TSIGKey) check() error {
	if k.Algorithm == "" {
		k.Algorithm = "hmac-sha256"
	}
	alg := strings.TrimSuffix(strings.ToLower(k.Algorithm), ".")
	if _, ok := tsigAlgorithms[alg]; !ok {
		return fmt.Errorf("acmedns: TSIG algorithm %q is not supported; want hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224 or hmac-sha1", k.Algorithm)
	}
	k.Algorithm = alg
	if k.Name == "" {
		return errors.New("acmedns: TSIG key name is empty")
	}
	name := dns.CanonicalName(k.Name)
	if _, ok := dns.IsDomainName(name); !ok || name == "." {
		return fmt.Errorf("acmedns: TSIG key name %q is not a domain name", k.Name)
	}
	k.Name = name
	if k.Secret == "" {
		return fmt.Errorf("acmedns: TSIG key %s has an empty secret", k.Name)
	}
	if _, err := decodeBase64(k.Secret.Reveal()); err != nil {
		return fmt.Errorf("acmedns: TSIG key %s: the secret is not valid base64", k.Name)
	}
	return nil
}

// RFC2136Config configures RFC 2136 dynamic updates signed with TSIG.
type RFC2136Config struct {
	// Server is the primary's host:port; a missing port means 53. Required.
	Server string
	// Zone is the zone the records are updated in; empty means the zone is
	// found by asking Server for the SOA of the record name.
	Zone string
	// Key signs the updates. Required.
	Key TSIGKey
	// TTL is the TTL of the TXT records; zero means DefaultTTL.
	TTL time.Duration
	// Timeout bounds one exchange with the server; zero means 10 seconds.
	Timeout time.Duration
}
