package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"

	"github.com/tailplane/tailplane/acmedns"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// ChallengePublisher publishes the ACME DNS-01 TXT record a node asks for
// with /machine/set-dns, for a short time; *acmedns.Publisher is one. An
// *acmedns.RateLimitError from Set reaches the node as "try again later".
type ChallengePublisher interface {
	Set(ctx context.Context, name, value string) error
}

// maxSetDNSBytes caps a /machine/set-dns body; tailscaled sends about 200
// bytes.
const maxSetDNSBytes = 4 << 10

// certDomain is the name n may get a certificate for: its FQDN, without
// the trailing dot.
func (w *world) certDomain(n *node) string {
	return n.givenName + "." + w.settings.Domain
}

// certDomainOf is the certificate domain of the node whose view is v: its
// FQDN without the trailing dot, as certDomain makes it.
func certDomainOf(v *tailcfg.Node) string { return strings.TrimSuffix(v.Name, ".") }

// dnsWithCert is a copy of c naming domain as the node's certificate domain.
func dnsWithCert(c *tailcfg.DNSConfig, domain string) *tailcfg.DNSConfig {
	d := *c
	d.CertDomains = []string{domain}
	return &d
}

// selfDNS is the DNS config in n's own netmap: the shared one, plus n's
// certificate domain when the tailnet has dns.https on.
func (w *world) selfDNS(n *node) *tailcfg.DNSConfig {
	if !w.tailnet.DNS.HTTPS {
		return w.dns
	}
	return dnsWithCert(w.dns, w.certDomain(n))
}

// selfView is n's view as n itself gets it: with dns.https on, a copy
// whose CapMap adds the "https" capability, which makes `tailscale serve
// --https` and `tailscale cert` available. Peers' copies go without it,
// keeping every netmap's peer list as small as before.
func (w *world) selfView(n *node) *tailcfg.Node {
	if !w.tailnet.DNS.HTTPS || n.view == nil {
		return n.view
	}
	return selfViewOf(n.view)
}

// selfViewOf is a copy of the view v with the "https" capability added.
func selfViewOf(view *tailcfg.Node) *tailcfg.Node {
	v := *view // views are never modified, so sharing the rest is safe
	v.CapMap = maps.Clone(view.CapMap)
	if v.CapMap == nil {
		v.CapMap = tailcfg.NodeCapMap{}
	}
	v.CapMap[tailcfg.CapabilityHTTPS] = nil
	return &v
}

// serveSetDNS handles POST /machine/set-dns over Noise: a node publishes
// the DNS-01 record of an ACME order for its own name. Only the TXT record
// _acme-challenge.<its FQDN> is accepted; it is published for a short time
// and never stored. tailscaled shows the first 200 bytes of an error body
// to the user, so every refusal is one short actionable sentence.
func (s *Server) serveSetDNS(w http.ResponseWriter, r *http.Request) {
	mkey := machineKeyOf(r)
	var req tailcfg.SetDNSRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSetDNSBytes)).Decode(&req); err != nil {
		msg := "request body is not a JSON SetDNSRequest"
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			msg = fmt.Sprintf("request body is larger than %d bytes", maxSetDNSBytes)
		}
		s.refuseSetDNS(w, mkey, &mapError{http.StatusBadRequest, msg})
		return
	}
	var name, nodeName string
	err := s.do(r.Context(), func(w *world) error {
		var err error
		name, nodeName, err = w.checkSetDNS(mkey, &req)
		return err
	})
	if err == nil && s.certDNS == nil {
		err = &mapError{http.StatusServiceUnavailable, "this tailplane server publishes no DNS records: its admin starts it with --dns-listen or --dns-provider (see docs/https.md)"}
	}
	if err == nil {
		if verr := acmedns.CheckTXTValue(req.Value); verr != nil {
			err = &mapError{http.StatusBadRequest, strings.TrimPrefix(verr.Error(), "acmedns: ")}
		}
	}
	if err != nil {
		s.refuseSetDNS(w, mkey, err)
		return
	}
	if err := s.certDNS.Set(r.Context(), name, req.Value); err != nil {
		var rl *acmedns.RateLimitError
		if errors.As(err, &rl) {
			s.refuseSetDNS(w, mkey, &mapError{http.StatusTooManyRequests, strings.TrimPrefix(rl.Error(), "acmedns: ")})
			return
		}
		s.logf("control: set-dns: publishing %s for node %q failed: %v", name, nodeName, err)
		http.Error(w, "tailplane: publishing the ACME challenge record failed; the tailplane server log has the reason", http.StatusBadGateway)
		return
	}
	s.logf("control: set-dns: published the ACME challenge record %s for node %q", name, nodeName)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(tailcfg.SetDNSResponse{})
}

// refuseSetDNS answers a refused set-dns request and logs why.
func (s *Server) refuseSetDNS(w http.ResponseWriter, mkey key.MachinePublic, err error) {
	code := http.StatusServiceUnavailable
	var me *mapError
	if errors.As(err, &me) {
		code = me.code
	}
	s.logf("control: set-dns from machine %s refused: %v", mkey.ShortString(), err)
	http.Error(w, "tailplane: "+err.Error(), code)
}

// checkSetDNS authenticates req and returns the record name it may set
// and the node's name.
func (w *world) checkSetDNS(mkey key.MachinePublic, req *tailcfg.SetDNSRequest) (name, nodeName string, err error) {
	if req.NodeKey.IsZero() {
		return "", "", &mapError{http.StatusBadRequest, "set-dns request has no node key"}
	}
	n, err := w.noiseNode(mkey, req.NodeKey)
	if err != nil {
		return "", "", err
	}
	switch {
	case w.keyExpired(n, w.srv.now()):
		return "", "", &mapError{http.StatusForbidden, "node key has expired; run `tailscale up --force-reauth` to log in again"}
	case !w.tailnet.DNS.HTTPS:
		return "", "", &mapError{http.StatusForbidden, "HTTPS certificates are off for this tailnet: its admin sets dns.https: true in the tailnet config (see docs/https.md)"}
	case req.Type != "TXT":
		return "", "", &mapError{http.StatusBadRequest, fmt.Sprintf("only TXT records can be set, not %.20q", req.Type)}
	}
	want := acmedns.ChallengeLabel + "." + w.certDomain(n)
	if got := strings.ToLower(strings.TrimSuffix(req.Name, ".")); got != want {
		return "", "", &mapError{http.StatusForbidden, fmt.Sprintf("node %s may only set %s, not %.80q", n.givenName, want, req.Name)}
	}
	return want, n.givenName, nil
}
