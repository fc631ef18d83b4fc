package main

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/spf13/pflag"
	"github.com/tailplane/tailplane/acmedns"
	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/server"
)

func TestHTTPSFlags(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "tsig.key")
	os.WriteFile(keyFile, []byte("hmac-sha512:acme-key:c2VjcmV0LXRzaWc=\n"), 0o600)
	badKeyFile := filepath.Join(dir, "bad.key")
	os.WriteFile(badKeyFile, []byte("acme-key:not base64 at all!"), 0o600)
	tokenFile := filepath.Join(dir, "cf.token")
	os.WriteFile(tokenFile, []byte("cf-token-from-file\n"), 0o600)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    server.Config // only the DNS fields
		wantErr string
	}{
		{name: "none", args: nil},
		{name: "embedded", args: []string{"--dns-listen", ":53", "--dns-zone", "ts.example.com", "--dns-ns", "ns1.ts.example.com,ns2.ts.example.com", "--dns-ns-addr", "203.0.113.10", "--dns-ns-addr", "2001:db8::10"},
			want: server.Config{DNSListen: ":53", DNSServer: acmedns.ServerConfig{Zone: "ts.example.com", NS: []string{"ns1.ts.example.com", "ns2.ts.example.com"},
				NSAddrs: []netip.Addr{netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("2001:db8::10")}}}},
		{name: "rfc2136 key file", args: []string{"--dns-provider", "rfc2136", "--rfc2136-server", "ns.example.com:5353", "--rfc2136-tsig-key-file", keyFile},
			want: server.Config{DNSProvider: acmedns.ProviderConfig{Kind: "rfc2136", RFC2136: acmedns.RFC2136Config{Server: "ns.example.com:5353",
				Key: acmedns.TSIGKey{Name: "acme-key.", Algorithm: "hmac-sha512", Secret: "c2VjcmV0LXRzaWc="}}}}},
		{name: "rfc2136 key in the environment", args: []string{"--dns-provider", "rfc2136", "--rfc2136-server", "ns.example.com", "--rfc2136-zone", "example.com"},
			env: map[string]string{envTSIGKey: "acme-key:c2VjcmV0LXRzaWc="},
			want: server.Config{DNSProvider: acmedns.ProviderConfig{Kind: "rfc2136", RFC2136: acmedns.RFC2136Config{Server: "ns.example.com", Zone: "example.com",
				Key: acmedns.TSIGKey{Name: "acme-key.", Algorithm: "hmac-sha256", Secret: "c2VjcmV0LXRzaWc="}}}}},
		{name: "cloudflare", args: []string{"--dns-provider", "cloudflare", "--cloudflare-zone", "example.com", "--cloudflare-token-file", tokenFile},
			want: server.Config{DNSProvider: acmedns.ProviderConfig{Kind: "cloudflare", Cloudflare: acmedns.CloudflareConfig{APIToken: "cf-token-from-file", Zone: "example.com"}}}},
		{name: "cloudflare token in the environment", args: []string{"--dns-provider", "cloudflare", "--cloudflare-zone-id", "z1"},
			env:  map[string]string{envCloudflareToken: "cf-token-from-env"},
			want: server.Config{DNSProvider: acmedns.ProviderConfig{Kind: "cloudflare", Cloudflare: acmedns.CloudflareConfig{APIToken: "cf-token-from-env", ZoneID: "z1"}}}},
		{name: "route53", args: []string{"--dns-provider", "route53", "--route53-zone-id", "Z123", "--route53-region", "eu-west-1"},
			want: server.Config{DNSProvider: acmedns.ProviderConfig{Kind: "route53", Route53: acmedns.Route53Config{HostedZoneID: "Z123", Region: "eu-west-1"}}}},
		{name: "both", args: []string{"--dns-listen", ":53", "--dns-provider", "route53"}, wantErr: "--dns-listen (the embedded DNS server) and --dns-provider route53 both publish ACME challenges; choose one"},
		{name: "unknown provider", args: []string{"--dns-provider", "bind"}, wantErr: `--dns-provider "bind" is not one of rfc2136, cloudflare, route53`},
		{name: "rfc2136 without a key", args: []string{"--dns-provider", "rfc2136", "--rfc2136-server", "ns.example.com"}, wantErr: "needs a TSIG key: --rfc2136-tsig-key-file FILE or $TAILPLANE_RFC2136_TSIG_KEY"},
		{name: "rfc2136 bad key", args: []string{"--dns-provider", "rfc2136", "--rfc2136-tsig-key-file", badKeyFile}, wantErr: "the secret is not valid base64"},
		{name: "cloudflare without a token", args: []string{"--dns-provider", "cloudflare", "--cloudflare-zone", "example.com"}, wantErr: "needs an API token"},
		{name: "missing token file", args: []string{"--dns-provider", "cloudflare", "--cloudflare-token-file", filepath.Join(dir, "nope")}, wantErr: "--cloudflare-token-file: reading secret"},
		{name: "bad glue address", args: []string{"--dns-listen", ":53", "--dns-ns-addr", "ns1"}, wantErr: `--dns-ns-addr "ns1" is not an IP address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h httpsFlags
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			h.register(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			env := &cliEnv{getenv: func(k string) string { return tt.env[k] }}
			var cfg server.Config
			err := h.apply(&cfg, env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("apply = %v; want an error containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "not base64 at all") {
					t.Errorf("the error shows the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := server.Config{DNSListen: cfg.DNSListen, DNSServer: cfg.DNSServer, DNSProvider: cfg.DNSProvider}
			if tt.want.DNSServer.Zone == "" && tt.want.DNSListen == "" {
				tt.want.DNSServer = cfg.DNSServer // empty either way
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("DNS settings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServeDNSListen runs `tailplane serve --dns-listen` and asks the
// embedded DNS server for the tailnet domain's SOA over UDP and TCP.
func TestServeDNSListen(t *testing.T) {
	dnsAddr := freeAddr(t) // a free TCP port; its UDP twin is free as well in practice
	log := startServe(t, "--config", filepath.Join(repoRoot, "examples", "basic"), "--state-dir", t.TempDir(),
		"--listen", freeAddr(t), "--dns-listen", dnsAddr)
	// The server starts on the default domain and follows the config's
	// once it applies: ask until the answer is for tail.example.internal.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for _, network := range []string{"udp", "tcp"} {
		m := new(dns.Msg)
		m.SetQuestion("tail.example.internal.", dns.TypeSOA)
		testkit.WaitFor(t, ctx, network+" SOA of tail.example.internal from "+dnsAddr, func() (bool, string) {
			resp, _, err := (&dns.Client{Net: network, Timeout: 5 * time.Second}).Exchange(m, dnsAddr)
			if err != nil {
				return false, err.Error()
			}
			return resp.Authoritative && len(resp.Answer) == 1 && resp.Answer[0].Header().Rrtype == dns.TypeSOA, resp.String()
		})
	}
	testkit.WaitFor(t, ctx, "serve to start serving", func() (bool, string) {
		return strings.Contains(log.String(), "tailplane serving"), log.String()
	})
	if !strings.Contains(log.String(), "embedded DNS server for ACME challenges on "+dnsAddr) {
		t.Errorf("log does not say where the DNS server listens:\n%s", log.String())
	}
}
