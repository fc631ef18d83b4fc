package policy

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"tailscale.com/tailcfg"
)

// Primary-router election.
//
// Several routers may serve the same subnet route. Peers route it through
// one of them, its primary, elected as Tailscale does ("connectors are
// selected in order of tailnet added date"):
//
//   - the primary stays primary while it is online and still has the
//     route approved: a router that registered earlier, or one coming back
//     online, does not take the route back;
//   - otherwise the online router that registered first (Node.Created,
//     then the lower ID) becomes primary;
//   - with no router online, the previous primary keeps the route if it
//     still has it approved, else the first registered router gets it.
//
// The election is state: the outcome depends on the previous one. Update
// carries it from the Result it is called on; Evaluate takes it from
// Options.Primaries, so a server that persists Result.Primaries keeps the
// same primaries across a restart.
//
// A via grant restricts the routers its sources use for its destinations
// to the via-tagged ones. Each distinct via tag set holds its own election
// per subnet, with the same rules among its routers; a fresh one prefers
// the subnet's primary when that router is one of them and online.
//
// Exit routes have no election: every exit node a peer may use is in its
// view, and the client picks one.

// PrimaryKey names one election: a subnet route, and for the routers of a
// via grant its via tags (sorted, comma-separated, e.g. "tag:a,tag:b").
// Via is empty for the subnet's own election, which every peer without a
// matching via grant uses.
type PrimaryKey struct {
	Prefix netip.Prefix
	Via    string
}

// String renders the key as "10.0.0.0/24" or "10.0.0.0/24 via tag:a,tag:b".
func (k PrimaryKey) String() string {
	if k.Via == "" {
		return k.Prefix.String()
	}
	return k.Prefix.String() + " via " + k.Via
}

// Primaries is the outcome of the elections: the primary router of each
// subnet route (and via tag set). Callers may persist it and hand it back
// through Options.Primaries; entries naming unknown nodes, or routers that
// no longer serve the route, are ignored.
type Primaries map[PrimaryKey]tailcfg.NodeID

// Primaries returns the elections' outcome, a copy the caller may keep.
func (r *Result) Primaries() Primaries {
	out := make(Primaries, len(r.elected))
	for k, s := range r.elected {
		out[k] = s.ID
	}
	return out
}

// viaKey is the election key of a via tag list.
func viaKey(via []alias) string {
	names := make([]string, 0, len(via))
	for _, a := range via {
		names = append(names, a.name)
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), ",")
}

// registeredBefore orders routers for a fresh election: earlier
// registration first, then the lower ID.
func registeredBefore(a, b *nodeState) bool {
	if c := a.Created.Compare(b.Created); c != 0 {
		return c < 0
	}
	return a.ID < b.ID
}

// electOne picks the primary among candidates (non-empty). prev is the
// previous primary, nil if none or not a candidate any more; prefer, when
// not nil, wins a fresh election if it is an online candidate.
func electOne(candidates []*nodeState, prev, prefer *nodeState) *nodeState {
	if prev != nil && !prev.Offline {
		return prev
	}
	var best *nodeState
	for _, s := range candidates {
		if s.Offline {
			continue
		}
		if s == prefer {
			return s
		}
		if best == nil || registeredBefore(s, best) {
			best = s
		}
	}
	if best != nil {
		return best
	}
	if prev != nil {
		return prev // nobody online: no reason to move
	}
	for _, s := range candidates {
		if best == nil || registeredBefore(s, best) {
			best = s
		}
	}
	return best
}

// electSubnets elects the primary router of every approved subnet route
// (the elections with an empty Via) and records each router's primaries.
// prev is the previous outcome.
func (r *Result) electSubnets(prev map[PrimaryKey]tailcfg.NodeID) {
	candidates := map[netip.Prefix][]*nodeState{}
	for _, i := range r.routers {
		s := r.nodes[i]
		for _, p := range s.subnets {
			candidates[p] = append(candidates[p], s)
		}
	}
	for p, cs := range candidates {
		k := PrimaryKey{Prefix: p}
		s := decidedAmong(k, cs)
		if s == nil {
			s = electOne(cs, previous(r, prev, k, cs), nil)
		}
		r.primary[p] = s
		r.elected[k] = s
		r.primaries[s.ID] = append(r.primaries[s.ID], p)
	}
	for _, ps := range r.primaries {
		slices.SortFunc(ps, comparePrefix)
	}
}

// electVia holds the elections of the via grants, after the rules are
// resolved: for every via rule and every subnet of its via routers that
// its destinations overlap, a primary among those routers.
func (r *Result) electVia(prev map[PrimaryKey]tailcfg.NodeID) {
	candidates := map[PrimaryKey][]*nodeState{}
	for _, er := range r.rules {
		if er.viaNodes == nil {
			continue
		}
		er.viaNodes.each(func(i int) {
			s := r.nodes[i]
			for _, p := range s.subnets {
				if !er.routeSet.OverlapsPrefix(p) {
					continue
				}
				k := PrimaryKey{Prefix: p, Via: er.viaKey}
				if !slices.Contains(candidates[k], s) {
					candidates[k] = append(candidates[k], s)
				}
			}
		})
	}
	for k, cs := range candidates {
		if s := decidedAmong(k, cs); s != nil {
			r.elected[k] = s
			continue
		}
		r.elected[k] = electOne(cs, previous(r, prev, k, cs), r.primary[k.Prefix])
	}
}

// decidedAmong returns the candidate another server decided wins k (see
// Node.DecidedPrimary), nil if none.
func decidedAmong(k PrimaryKey, candidates []*nodeState) *nodeState {
	for _, s := range candidates {
		if slices.Contains(s.DecidedPrimary, k) {
			return s
		}
	}
	return nil
}

// previous returns the node prev elected for k if it is still one of the
// candidates, else nil.
func previous(r *Result, prev map[PrimaryKey]tailcfg.NodeID, k PrimaryKey, candidates []*nodeState) *nodeState {
	id, ok := prev[k]
	if !ok {
		return nil
	}
	if s := r.state(id); s != nil && slices.Contains(candidates, s) {
		return s
	}
	return nil
}

// electionChanges lists the elections whose primary differs between r and
// nr, sorted.
func electionChanges(r, nr *Result) []PrimaryKey {
	var out []PrimaryKey
	for k, s := range r.elected {
		if ns, ok := nr.elected[k]; !ok || ns.ID != s.ID {
			out = append(out, k)
		}
	}
	for k := range nr.elected {
		if _, ok := r.elected[k]; !ok {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b PrimaryKey) int {
		if c := comparePrefix(a.Prefix, b.Prefix); c != 0 {
			return c
		}
		return cmp.Compare(a.Via, b.Via)
	})
	return out
}
