package control

import (
	"net/http"
	"slices"
	"time"

	"tailscale.com/tailcfg"
)

// Expired nodes. A node whose key expired gets nothing from the tailnet but
// the instruction to log in again: its map requests are answered with
// expiredMap, which a Tailscale client reads as "key expired" (its self
// node's KeyExpiry is past, so it goes to NeedsLogin); the state its
// requests carry (endpoints, hostinfo) is neither stored nor relayed; its
// peers see it as expired, offline and without endpoints; and the relay
// refuses it. Logging in again with an auth key ends all of this.

// errKeyExpired refuses an expired node's endpoint and hostinfo updates.
var errKeyExpired = &mapError{http.StatusForbidden, "this node's key expired, so its updates are refused; log in again with `tailscale up` (or `tailscale up --force-reauth --auth-key=KEY`)"}

// expiredMap is the whole netmap of an expired node: its own (expired)
// node, and no peers, packet filter rules, SSH rules or DNS. It resets the
// session's queue like fullMap.
func (w *world) expiredMap(p *node, forSession bool) *tailcfg.MapResponse {
	now := w.srv.now()
	resp := &tailcfg.MapResponse{
		Node:          p.view,
		PacketFilters: filterMessage(nil),
		SSHPolicy:     &tailcfg.SSHPolicy{},
		DNSConfig:     &tailcfg.DNSConfig{},
		ControlTime:   &now,
	}
	if up, ok := (*w.profiles)[p.view.User]; ok {
		resp.UserProfiles = []tailcfg.UserProfile{up}
	}
	// An empty Peers list means "no change": name every other node as
	// removed, so a client that had peers drops them.
	for id := range w.nodes {
		if id != p.id {
			resp.PeersRemoved = append(resp.PeersRemoved, id)
		}
	}
	slices.Sort(resp.PeersRemoved)
	if forSession && p.sess != nil {
		p.sess.resetForFull(nil, resp.SSHPolicy)
	}
	return resp
}

// cutOffExpired handles n's key expiring: n goes offline for its peers
// (subnet routes fail over), they get its expired view, the relay drops
// it, and its map session, which stays open for the client to read the
// news, gets the expired netmap and then nothing but keep-alives.
func (w *world) cutOffExpired(n *node) {
	w.srv.logf("control: node %q (%d): key expired at %s; it must log in again", n.givenName, n.id, n.keyExpiry.Format(time.RFC3339))
	if n.sess != nil && w.live[n.id] == n {
		delete(w.live, n.id)
		n.sess.enqueueFull()
	}
	if n.online {
		n.online = false
		off := false
		w.onlineChanged(n, &tailcfg.PeerChange{NodeID: n.id, Online: &off})
	}
	w.publishChanged(n)
}
