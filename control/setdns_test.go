package control

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/acmedns"
	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
)

// httpsTailnet is testTailnet with dns.https on under a public-looking domain.
func httpsTailnet() *schema.Tailnet {
	tn := testTailnet()
	tn.Settings.Domain = "ts.example.com"
	tn.DNS.HTTPS = true
	return tn
}

// startChallengeDNS starts the embedded DNS server for zone and a
// Publisher in front of it, as `tailplane serve --dns-listen` does.
func startChallengeDNS(t testing.TB, zone string, rateLimit int) (*acmedns.Server, *acmedns.Publisher) {
	t.Helper()
	logf := t.Logf
	if _, fuzz := t.(*testing.F); fuzz {
		logf = func(string, ...any) {} // f.Logf may not be called from fuzz targets
	}
	srv, err := acmedns.NewServer(t.Context(), acmedns.ServerConfig{Zone: zone, Addr: "127.0.0.1:0", Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := acmedns.NewPublisher(acmedns.PublisherConfig{Provider: srv, RateLimit: rateLimit, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pub.Close()
		srv.Close()
	})
	return srv, pub
}

func setDNSReq(n *rawNode, name, typ, value string) *tailcfg.SetDNSRequest {
	return &tailcfg.SetDNSRequest{Version: tailcfg.CurrentCapabilityVersion, NodeKey: n.nk.Public(), Name: name, Type: typ, Value: value}
}

func TestSetDNS(t *testing.T) {
	dnsSrv, pub := startChallengeDNS(t, "ts.example.com", 3)
	ts := startServerWith(t, httpsTailnet(), "", func(c *Config) { c.CertDNS = pub })
	web := newRawNode(t, ts)
	web.register(web.registerReq(aliceKey))
	other := newRawNode(t, ts)
	other.register(other.registerReq(aliceKey)) // "raw" is taken: gets another name
	stranger := newRawNode(t, ts)
	own := "_acme-challenge.raw.ts.example.com"

	tests := []struct {
		name     string
		from     *rawNode
		body     any
		wantCode int
		wantBody string // substring of the response body
	}{
		{"own name", web, setDNSReq(web, own, "TXT", "token-1"), 200, "{}"},
		{"own name, trailing dot and capitals", web, setDNSReq(web, "_ACME-challenge.Raw.ts.example.com.", "TXT", "token-2"), 200, "{}"},
		{"another node's name", other, setDNSReq(other, own, "TXT", "stolen"), 403, "may only set _acme-challenge.raw-"},
		{"the node's own name without the challenge label", web, setDNSReq(web, "raw.ts.example.com", "TXT", "v"), 403, "may only set " + own},
		{"a name outside the tailnet", web, setDNSReq(web, "_acme-challenge.example.org", "TXT", "v"), 403, "may only set"},
		{"type A", web, setDNSReq(web, own, "A", "192.0.2.1"), 400, `only TXT records can be set, not "A"`},
		{"empty value", web, setDNSReq(web, own, "TXT", ""), 400, "want 1 to 255"},
		{"value with a space", web, setDNSReq(web, own, "TXT", "a b"), 400, "printable ASCII"},
		{"long value", web, setDNSReq(web, own, "TXT", strings.Repeat("x", 256)), 400, "want 1 to 255"},
		{"node key of another machine", stranger, setDNSReq(web, own, "TXT", "v"), 403, "belongs to a different machine"},
		{"unregistered node key", stranger, setDNSReq(stranger, own, "TXT", "v"), 401, "is not registered"},
		{"no node key", web, &tailcfg.SetDNSRequest{Name: own, Type: "TXT", Value: "v"}, 400, "no node key"},
		{"not JSON", web, []byte("set it please"), 400, "not a JSON SetDNSRequest"},
		{"wrong JSON type", web, []byte(`{"Name": 5}`), 400, "not a JSON SetDNSRequest"},
		{"body too large", web, []byte(`{"Name":"` + strings.Repeat("a", maxSetDNSBytes) + `"}`), 400, "larger than 4096 bytes"},
		{"rate limit", web, setDNSReq(web, own, "TXT", "token-3"), 200, "{}"},
		{"over the rate limit", web, setDNSReq(web, own, "TXT", "token-4"), 429, "3 challenge records were set for " + own + ". within 10m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := tt.from.post("/machine/set-dns", tt.body)
			if code != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("HTTP %d %q; want %d containing %q", code, body, tt.wantCode, tt.wantBody)
			}
			if code == 200 {
				var resp tailcfg.SetDNSResponse
				if err := json.Unmarshal(body, &resp); err != nil {
					t.Errorf("200 body %q is not a SetDNSResponse: %v", body, err)
				}
			}
		})
	}
	if diff := cmp.Diff([]string{"token-1", "token-2", "token-3"}, testkit.LookupTXT(t, dnsSrv.Addr(), own)); diff != "" {
		t.Errorf("published values (-want +got):\n%s", diff)
	}
	if got := testkit.LookupTXT(t, dnsSrv.Addr(), "_acme-challenge."+otherName(t, ts, other)+".ts.example.com"); len(got) != 0 {
		t.Errorf("the refused node's name has TXT %q; want none", got)
	}
}

// otherName returns n's given name.
func otherName(t *testing.T, ts *testServer, n *rawNode) string {
	t.Helper()
	var name string
	ts.do(t.Context(), func(w *world) error {
		name = w.byKey[n.nk.Public()].givenName
		return nil
	})
	return name
}

func TestSetDNSRefusedWithout(t *testing.T) {
	_, pub := startChallengeDNS(t, "ts.example.com", 0)
	off := httpsTailnet()
	off.DNS.HTTPS = false
	tests := []struct {
		name     string
		tailnet  *schema.Tailnet
		certDNS  ChallengePublisher
		wantCode int
		wantBody string
	}{
		{"dns.https off", off, pub, 403, "HTTPS certificates are off for this tailnet"},
		{"no DNS server or provider", httpsTailnet(), nil, 503, "publishes no DNS records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServerWith(t, tt.tailnet, "", func(c *Config) { c.CertDNS = tt.certDNS })
			n := newRawNode(t, ts)
			n.register(n.registerReq(aliceKey))
			code, body := n.post("/machine/set-dns", setDNSReq(n, "_acme-challenge.raw.ts.example.com", "TXT", "v"))
			if code != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("HTTP %d %q; want %d containing %q", code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

// certState is what a netmap says about certificates for its node.
type certState struct {
	CertDomains []string
	HTTPSCap    bool
}

func certStateOf(resp *tailcfg.MapResponse) certState {
	var s certState
	if resp.DNSConfig != nil {
		s.CertDomains = resp.DNSConfig.CertDomains
	}
	if resp.Node != nil {
		_, s.HTTPSCap = resp.Node.CapMap[tailcfg.CapabilityHTTPS]
	}
	return s
}

func TestCertDomainsFollowConfig(t *testing.T) {
	ts := startServer(t, httpsTailnet(), "")
	n := newRawNode(t, ts)
	n.register(n.registerReq(aliceKey))
	peer := newRawNode(t, ts)
	peer.register(peer.registerReq(aliceKey))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := n.stream(ctx, n.mapReq(true))
	on := certState{CertDomains: []string{"raw.ts.example.com"}, HTTPSCap: true}
	first := s.next()
	if diff := cmp.Diff(on, certStateOf(first)); diff != "" {
		t.Errorf("netmap with dns.https on (-want +got):\n%s", diff)
	}
	if len(first.Peers) != 1 {
		t.Fatalf("first netmap has %d peers; want the other node", len(first.Peers))
	}
	for _, p := range first.Peers {
		if _, ok := p.CapMap[tailcfg.CapabilityHTTPS]; ok {
			t.Errorf("peer %s carries the https capability; only a node's own view should", p.Name)
		}
	}
	ps := peer.stream(ctx, peer.mapReq(true))
	peerOn := certState{CertDomains: []string{otherName(t, ts, peer) + ".ts.example.com"}, HTTPSCap: true}
	if diff := cmp.Diff(peerOn, certStateOf(ps.next())); diff != "" {
		t.Errorf("the peer's netmap lists only its own name (-want +got):\n%s", diff)
	}
	off := httpsTailnet()
	off.DNS.HTTPS = false
	if err := ts.SetConfig(ctx, off); err != nil {
		t.Fatal(err)
	}
	full := s.next()
	for full.DNSConfig == nil { // skip the peer's online patch
		full = s.next()
	}
	if full.Node == nil {
		t.Fatalf("full netmap after the config change has no self node")
	}
	if diff := cmp.Diff(certState{}, certStateOf(full)); diff != "" {
		t.Errorf("netmap after dns.https was turned off (-want +got):\n%s", diff)
	}
}

func TestFeatureQuery(t *testing.T) {
	off := httpsTailnet()
	off.DNS.HTTPS = false
	on := startServer(t, httpsTailnet(), "")
	offSrv := startServer(t, off, "")
	onNode, offNode := newRawNode(t, on), newRawNode(t, offSrv)
	onNode.register(onNode.registerReq(aliceKey))
	offNode.register(offNode.registerReq(aliceKey))
	stranger := newRawNode(t, on)
	tests := []struct {
		name     string
		from     *rawNode
		body     any
		wantCode int
		want     tailcfg.QueryFeatureResponse
	}{
		{"serve with dns.https on", onNode, tailcfg.QueryFeatureRequest{Feature: "serve", NodeKey: onNode.nk.Public()}, 200,
			tailcfg.QueryFeatureResponse{Complete: true}},
		{"serve with dns.https off", offNode, tailcfg.QueryFeatureRequest{Feature: "serve", NodeKey: offNode.nk.Public()}, 200,
			tailcfg.QueryFeatureResponse{Text: "HTTPS certificates are off for this tailnet.\nIts admin turns them on with \"dns\": {\"https\": true} in the tailnet config and runs tailplane serve with --dns-listen or --dns-provider (see docs/https.md in tailplane)."}},
		{"funnel", onNode, tailcfg.QueryFeatureRequest{Feature: "funnel", NodeKey: onNode.nk.Public()}, 200,
			tailcfg.QueryFeatureResponse{Text: "tailplane does not offer Funnel: nodes cannot be reached from the internet through it."}},
		{"unknown feature", onNode, tailcfg.QueryFeatureRequest{Feature: "teleport", NodeKey: onNode.nk.Public()}, 200,
			tailcfg.QueryFeatureResponse{Text: `tailplane does not offer the feature "teleport".`}},
		{"unregistered node key", stranger, tailcfg.QueryFeatureRequest{Feature: "serve", NodeKey: stranger.nk.Public()}, 401, tailcfg.QueryFeatureResponse{}},
		{"another machine's node key", stranger, tailcfg.QueryFeatureRequest{Feature: "serve", NodeKey: onNode.nk.Public()}, 403, tailcfg.QueryFeatureResponse{}},
		{"not JSON", onNode, []byte("serve?"), 400, tailcfg.QueryFeatureResponse{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := tt.from.post("/machine/feature/query", tt.body)
			if code != tt.wantCode {
				t.Fatalf("HTTP %d %q; want %d", code, body, tt.wantCode)
			}
			if code != 200 {
				return
			}
			var got tailcfg.QueryFeatureResponse
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}
