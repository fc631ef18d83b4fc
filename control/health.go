package control

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// Router health.
//
// A subnet router whose map stream is up may still be unable to route: a
// hung or stopped process keeps its TCP connection open. The owner
// goroutine therefore pings every subnet router that has a map stream,
// every RouterHealth.Interval, with a tailcfg.PingRequest sent over its
// stream. The client answers with a HEAD request to the ping's URL over
// its Noise connection (URLIsNoise). A router that leaves Misses pings in
// a row unanswered (each has until the next is due) is unhealthy: the
// policy engine sees it as offline, so its subnets fail over to another
// router as if it had disconnected. Its next answer makes it healthy
// again: it is again a candidate, and, the election being sticky, takes
// nothing back.
//
// After a restart every router is offline until it reconnects. For
// RouterHealth.RestartGrace the routers the saved election names are seen
// as online (by the election only), so a standby that reconnects first
// does not take their subnets; a primary that has not reconnected when the
// grace ends fails over then.

// RouterHealth configures the health checks of subnet routers and the
// grace period after a restart. Each zero field means the default named
// in its comment; docs/server.md explains the choices.
type RouterHealth struct {
	// Interval is how often each subnet router with a map stream is
	// pinged; zero means 10 s, negative turns the checks off.
	Interval time.Duration
	// Misses is how many pings in a row a router may leave unanswered
	// before it is failed over; zero means 2. A ping counts as missed when
	// the next one is due, so a hung router fails over within
	// Misses × Interval (20 s by default) plus the tick it hung in.
	Misses int
	// RestartGrace is how long after start-up the primary routers of the
	// saved election keep their subnets while offline; zero means 45 s
	// (Tailscale clients retry the control plane at least every 30 s),
	// negative means no grace.
	RestartGrace time.Duration
}

const (
	defaultRouterPingInterval = 10 * time.Second
	defaultRouterPingMisses   = 2
	defaultRestartGrace       = 45 * time.Second
)

// withDefaults fills in the documented defaults of h.
func (h RouterHealth) withDefaults() RouterHealth {
	if h.Interval == 0 {
		h.Interval = defaultRouterPingInterval
	}
	if h.Misses <= 0 {
		h.Misses = defaultRouterPingMisses
	}
	if h.RestartGrace == 0 {
		h.RestartGrace = defaultRestartGrace
	}
	return h
}

// routerHealth is the owner goroutine's record of one router's pings.
type routerHealth struct {
	pingToken string // the outstanding ping's token; empty when none is
	misses    int    // pings left unanswered in a row
	unhealthy bool   // failed over for missed pings, until it answers one
}

// pingTarget is whom a ping token was sent to.
type pingTarget struct {
	node    tailcfg.NodeID
	machine key.MachinePublic
}

// pingTable holds the outstanding pings' tokens, so answers are checked
// without a trip to the owner goroutine: only the one answer to a ping
// sent costs the owner anything.
type pingTable struct {
	mu     sync.Mutex            // guards the field below
	tokens map[string]pingTarget // outstanding tokens
}

// issue returns a fresh token for a ping to node id of machine mk.
func (pt *pingTable) issue(id tailcfg.NodeID, mk key.MachinePublic) string {
	var b [16]byte
	rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.tokens == nil {
		pt.tokens = map[string]pingTarget{}
	}
	pt.tokens[tok] = pingTarget{node: id, machine: mk}
	return tok
}

// take removes and returns tok's target if tok was sent to machine mk.
func (pt *pingTable) take(tok string, mk key.MachinePublic) (pingTarget, bool) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	t, ok := pt.tokens[tok]
	if !ok || t.machine != mk {
		return pingTarget{}, false
	}
	delete(pt.tokens, tok)
	return t, true
}

// forget drops tok, a ping that will not be counted any more.
func (pt *pingTable) forget(tok string) {
	if tok == "" {
		return
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	delete(pt.tokens, tok)
}

// servePing answers HEAD /machine/ping/{token}: a client's answer to a
// PingRequest. Only the machine the ping was sent to can answer it, once.
func (s *Server) servePing(w http.ResponseWriter, r *http.Request) {
	tok := r.PathValue("token")
	t, ok := s.pings.take(tok, machineKeyOf(r))
	if !ok {
		http.Error(w, "tailplane: no such ping outstanding", http.StatusNotFound)
		return
	}
	err := s.do(r.Context(), func(w *world) error {
		w.pingAnswered(t.node, tok)
		return nil
	})
	if err != nil {
		http.Error(w, "tailplane: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// routesSubnets reports whether n advertises a subnet route (not only exit
// routes): only those routers take part in elections.
func routesSubnets(n *node) bool {
	return slices.ContainsFunc(n.hostinfo.RoutableIPs, func(p netip.Prefix) bool { return p.Bits() > 0 })
}

// routesOffline reports whether the election sees n as offline: without a
// map stream or unhealthy, unless the restart grace covers it.
func (w *world) routesOffline(n *node) bool {
	if w.graceFor[n.id] {
		return false
	}
	return !n.online || n.health.unhealthy
}

// checkRouters is the periodic health check: every subnet router with a
// map stream has its outstanding ping counted as missed and gets a new
// one; a router reaching the limit of misses is failed over.
func (w *world) checkRouters() {
	for _, n := range w.live {
		if !routesSubnets(n) {
			continue
		}
		h := &n.health
		if h.pingToken != "" {
			w.srv.pings.forget(h.pingToken)
			h.pingToken = ""
			h.misses++
			if h.misses >= w.srv.health.Misses && !h.unhealthy {
				h.unhealthy = true
				w.srv.logf("control: router %q (%d) left %d pings in a row unanswered; its subnets fail over until it answers", n.givenName, n.id, h.misses)
				w.fanout(n) // replicas: the deciding one fails it over
				w.membershipChanged(n, false)
			}
		}
		w.sendPing(n)
	}
}

// sendPing sends n (which has a map stream) a ping to answer.
func (w *world) sendPing(n *node) {
	tok := w.srv.pings.issue(n.id, n.machine)
	n.health.pingToken = tok
	u := url.URL{Scheme: "https", Host: n.sess.host, Path: "/machine/ping/" + tok}
	n.sess.enqueuePing(&tailcfg.PingRequest{URL: u.String(), URLIsNoise: true})
}

// pingAnswered records node id's answer to the ping with token tok. An
// unhealthy router is healthy again: a candidate in the next election.
func (w *world) pingAnswered(id tailcfg.NodeID, tok string) {
	n := w.nodes[id]
	if n == nil || n.health.pingToken != tok {
		return
	}
	h := &n.health
	h.pingToken, h.misses = "", 0
	if h.unhealthy {
		h.unhealthy = false
		w.srv.logf("control: router %q (%d) answers pings again; it may route its subnets", n.givenName, n.id)
		w.fanout(n)
		w.membershipChanged(n, false)
	}
}

// dropPing forgets n's outstanding ping and its misses: its stream ended
// or is replaced, and pings are counted per stream. Whether it is
// unhealthy stays.
func (w *world) dropPing(n *node) {
	w.srv.pings.forget(n.health.pingToken)
	n.health.pingToken, n.health.misses = "", 0
}

// streamStarted prepares n's pings for its new map stream. A router still
// unhealthy is pinged at once, so it can recover without waiting for the
// next check; a router the restart grace covered is now judged by its
// stream.
func (w *world) streamStarted(n *node) {
	delete(w.graceFor, n.id)
	w.dropPing(n)
	if n.health.unhealthy && w.srv.health.Interval > 0 && routesSubnets(n) {
		w.sendPing(n)
	}
}

// startGrace lists the routers the saved election names, for the restart
// grace (see routesOffline).
func (w *world) startGrace() {
	if w.srv.health.RestartGrace <= 0 || len(w.primaries) == 0 {
		return
	}
	w.graceFor = map[tailcfg.NodeID]bool{}
	for _, id := range w.primaries {
		w.graceFor[id] = true
	}
}

// endGrace ends the restart grace: the saved primaries that have not
// reconnected are offline from now on, and their subnets fail over.
func (w *world) endGrace() {
	waiting := w.graceFor
	w.graceFor = nil
	for id := range waiting {
		if n := w.nodes[id]; n != nil && !n.online {
			w.srv.logf("control: router %q (%d) has not reconnected within the restart grace; its subnets fail over", n.givenName, n.id)
			w.membershipChanged(n, false)
		}
	}
}

// healthTicks returns the channel of the periodic router check and the
// end of the restart grace (nil when off), and a function stopping both.
func (s *Server) healthTicks() (check <-chan time.Time, grace <-chan time.Time, stop func()) {
	var stops []func() bool
	if s.health.Interval > 0 {
		t := time.NewTicker(s.health.Interval)
		check = t.C
		stops = append(stops, func() bool { t.Stop(); return true })
	}
	if s.health.RestartGrace > 0 {
		t := time.NewTimer(s.health.RestartGrace)
		grace = t.C
		stops = append(stops, t.Stop)
	}
	return check, grace, func() {
		for _, f := range stops {
			f()
		}
	}
}
