package control

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/tailplane/tailplane/policy"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
)

// Primary routers among replicas.
//
// Every replica knows every router, but each sees only its own history of
// events, so their sticky elections could part ways, and nodes on
// different replicas would route a subnet through different routers. So
// one replica decides (package replica: the applier) and the others
// follow it:
//
//	DecidePrimaries(ctx)        this server elects (the default; a single server always does)
//	FollowPrimaries(ctx, rows)  another decides: rows (store.PrimaryRoutes) is its outcome, installed
//
// The deciding server elects as a single server does, over every router:
// the online state of routers streaming to other replicas and their health
// (RuntimeState.Unhealthy, observed by the replica holding the stream)
// come with the other replicas' runtime. Its outcome is written to the
// store under the applier fence (primariesWriter), which notifies the
// others. A follower hands each router the elections the outcome names
// (policy.Node.DecidedPrimary), so they go to that router while it is a
// candidate here, whatever this replica sees of it; an election the
// outcome does not name yet (a route approved a moment ago) is held here
// as usual until it does. A follower that becomes the decider continues
// from the outcome it installed, so the primaries do not move by the
// handover itself.

// primaryLead is what the world follows of another replica's elections.
type primaryLead struct {
	follow  bool             // another replica decides; the fields below are its outcome
	outcome policy.Primaries // as installed
	// byRouter is outcome by router, for policyNode.
	byRouter map[tailcfg.NodeID][]policy.PrimaryKey
}

// decidedFor returns the elections the followed outcome gives node id;
// nil while this server decides.
func (w *world) decidedFor(id tailcfg.NodeID) []policy.PrimaryKey {
	return w.lead.byRouter[id]
}

// DecidePrimaries makes this server the one that elects the primary
// routers (see above): from the outcome it followed so far, which it
// saves at once, so that the others follow it.
func (s *Server) DecidePrimaries(ctx context.Context) error {
	return s.do(ctx, func(w *world) error {
		followed := w.lead.follow
		w.lead = primaryLead{}
		if followed {
			w.electionsChanged()
		}
		w.primaries = w.res.Primaries()
		if s.primariesOut != nil {
			s.primariesOut.hand(w.primaries)
		}
		return nil
	})
}

// FollowPrimaries installs the deciding replica's election outcome, rows
// as store.PrimaryRoutes returns them; this server no longer saves its
// own. Installing the outcome already installed changes nothing.
func (s *Server) FollowPrimaries(ctx context.Context, rows []store.PrimaryRoute) error {
	outcome := primariesFromStore(rows, s.logf)
	return s.do(ctx, func(w *world) error {
		if w.lead.follow && maps.Equal(outcome, w.lead.outcome) {
			return nil
		}
		byRouter := map[tailcfg.NodeID][]policy.PrimaryKey{}
		for k, id := range outcome {
			byRouter[id] = append(byRouter[id], k)
		}
		for _, keys := range byRouter {
			slices.SortFunc(keys, func(a, b policy.PrimaryKey) int { return strings.Compare(a.String(), b.String()) })
		}
		w.lead = primaryLead{follow: true, outcome: outcome, byRouter: byRouter}
		w.primaries = outcome
		w.electionsChanged()
		return nil
	})
}

// updateRouters hands the policy engine every subnet router again (their
// DecidedPrimary may have changed) and returns the nodes whose views that
// affects. A pass over the nodes, but only when another replica's
// decision arrives.
func (w *world) updateRouters() []tailcfg.NodeID {
	var changed []policy.Node
	for _, n := range w.nodes {
		if routesSubnets(n) && w.inInventory(n, w.tailnet, w.compiled) {
			changed = append(changed, w.policyNode(n, w.tailnet, w.compiled))
		}
	}
	return w.updateNodes(changed, nil)
}

// electionsChanged re-elects after a change of what only elections read
// (another replica's decision): the routers whose routes moved are
// republished, and every affected live node checks its packet filter.
func (w *world) electionsChanged() {
	for _, id := range w.updateRouters() {
		x := w.nodes[id]
		if x == nil {
			continue
		}
		if len(x.hostinfo.RoutableIPs) > 0 {
			w.refreshIfRoutesMoved(x)
		}
		if p := w.live[id]; p != nil {
			p.sess.enqueueFilterCheck(w.pol)
		}
	}
}
