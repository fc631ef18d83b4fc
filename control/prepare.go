package control

import (
	"context"
	"errors"

	"github.com/tailplane/tailplane/policy"
	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
)

// Prepared is a tailnet config that passed every check the server makes,
// compiled for installing: the policy compiled, the policy's derpMap merged
// into the server's DERP map, the DNS config built. Prepare makes one;
// Test runs its policy tests and Install serves it. It is immutable and
// belongs to the Server that prepared it.
type Prepared struct {
	srv      *Server
	tailnet  *schema.Tailnet
	settings schema.Settings // tailnet.Settings with schema's defaults filled in
	compiled *policy.Policy
	derpMap  *tailcfg.DERPMap // the server's map with the policy's derpMap applied
	derpBase *tailcfg.DERPMap // the server's map derpMap was made from
	dns      *tailcfg.DNSConfig
}

// Tailnet returns the config p was prepared from; it must not be modified.
func (p *Prepared) Tailnet() *schema.Tailnet { return p.tailnet }

// Policy returns p's compiled policy.
func (p *Prepared) Policy() *policy.Policy { return p.compiled }

// Prepare checks and compiles t: the policy must compile and its derpMap
// must merge into the server's DERP map. It is the only place a config is
// compiled; what it returns is what Install installs. An error wrapping
// schema.Diagnostics is a policy that does not compile (the diagnostics
// carry positions); any other error is a config the server cannot serve
// otherwise (a derpMap that does not merge). Prepare reads only immutable
// server fields and the server's own DERP map (an atomic pointer, see
// SetDERPMap), so it runs off the owner goroutine and never waits.
func (s *Server) Prepare(t *schema.Tailnet) (*Prepared, error) {
	if t == nil {
		return nil, errors.New("control: no tailnet config given")
	}
	compiled, err := compilePolicy(t)
	if err != nil {
		return nil, err
	}
	base := s.baseDERPMap()
	derpMap, err := effectiveDERPMap(base, t.Policy.DERPMap)
	if err != nil {
		return nil, err
	}
	settings := t.Settings.WithDefaults()
	return &Prepared{srv: s, tailnet: t, settings: settings, compiled: compiled, derpMap: derpMap, derpBase: base, dns: dnsConfig(t, settings.Domain)}, nil
}

// Test runs p's policy tests (tests and sshTests) against the nodes the
// server evaluates its policy against, as they would be under p (approved
// routes included), plus a stand-in node for every user and tag that has
// none (policy.TestInventory). The node list is taken on the owner
// goroutine; the tests run on the caller's. It returns the failed tests'
// diagnostics (empty when every test passes), or an error when the server
// is shut down or ctx ends first.
func (s *Server) Test(ctx context.Context, p *Prepared) (schema.Diagnostics, error) {
	if err := s.owns(p); err != nil {
		return nil, err
	}
	var nodes []policy.Node
	err := s.do(ctx, func(w *world) error {
		nodes = w.inventoryUnder(p.tailnet, p.compiled)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p.compiled.RunTests(policy.TestInventory(p.tailnet, nodes)), nil
}

// Install makes p the served config and sends every connected node what
// it changes for it: a delta (new filter, changed and removed peers; see
// resync.go) when the config's part of the netmap stays as it was, else
// a full netmap. It returns once p is in effect. Nodes whose user, or all
// of whose tags, p no longer declares are logged out (see
// pruneUndeclared); WaitPropagated tells when every connected node was
// sent the new netmap. p must come from s.Prepare.
func (s *Server) Install(ctx context.Context, p *Prepared) error {
	if err := s.owns(p); err != nil {
		return err
	}
	return s.do(ctx, func(w *world) error {
		w.install(ctx, p)
		return nil
	})
}

// install is Install's share of the owner goroutine.
func (w *world) install(ctx context.Context, p *Prepared) {
	before := w.netmapShape()
	w.setTailnet(p)      // publishes the config and its user profiles
	w.configChanged(ctx) // prune, track propagation
	w.configDelta(before)
}

// owns refuses a Prepared made by another server: its DERP map was merged
// into that server's.
func (s *Server) owns(p *Prepared) error {
	if p == nil || p.srv != s {
		return errors.New("control: the config was not prepared by this server (hint: pass what its Prepare returned)")
	}
	return nil
}

// Tailnet returns the config being served: the last one installed (or the
// one New started with). Its authKeys register nodes and its apiKeys guard
// the admin API. It is never nil and must not be modified.
func (s *Server) Tailnet() *schema.Tailnet { return s.tailnet.Load() }
