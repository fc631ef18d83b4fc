package control

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// relayAdmission is the set of node keys the embedded DERP relay serves:
// those of registered, logged-in nodes whose key has not expired. The
// owner goroutine keeps it current (set with every rebuild of a node's
// view, drop when a node is removed); the relay checks it for every new
// connection without a round trip to the owner goroutine.
type relayAdmission struct {
	now    func() time.Time
	revoke func(key.NodePublic) // ends a key's relay connections; nil without a relay

	mu     sync.Mutex                        // guards the fields below
	keys   map[key.NodePublic]time.Time      // admitted key → its expiry (zero: none)
	byNode map[tailcfg.NodeID]key.NodePublic // the admitted key of each node
}

func newRelayAdmission(now func() time.Time) *relayAdmission {
	return &relayAdmission{now: now, keys: map[key.NodePublic]time.Time{}, byNode: map[tailcfg.NodeID]key.NodePublic{}}
}

// set records whether node id, now holding key k that expires at expiry
// (zero: never), may use the relay. A key that loses admission, because
// the node logged out, expired or got a new key, also loses its open relay
// connections.
func (a *relayAdmission) set(id tailcfg.NodeID, k key.NodePublic, admitted bool, expiry time.Time) {
	a.mu.Lock()
	old, had := a.byNode[id]
	lost := had && (old != k || !admitted)
	if lost {
		delete(a.keys, old)
		delete(a.byNode, id)
	}
	if admitted {
		a.keys[k] = expiry
		a.byNode[id] = k
	}
	a.mu.Unlock()
	if lost && a.revoke != nil {
		a.revoke(old)
	}
}

// drop forgets a removed node and ends its relay connections.
func (a *relayAdmission) drop(id tailcfg.NodeID) {
	a.set(id, key.NodePublic{}, false, time.Time{})
}

// check reports why the relay must refuse k, or nil.
func (a *relayAdmission) check(k key.NodePublic) error {
	a.mu.Lock()
	expiry, ok := a.keys[k]
	a.mu.Unlock()
	switch {
	case !ok:
		return errors.New("not the key of a registered, logged-in node of this tailnet")
	case !expiry.IsZero() && a.now().After(expiry):
		return fmt.Errorf("the node's key expired at %s; the node must log in again", expiry.UTC().Format(time.RFC3339))
	}
	return nil
}

// relayAdmitted reports whether n may use the embedded relay now.
func (w *world) relayAdmitted(n *node) bool {
	return !n.loggedOut && !n.pending && !w.keyExpired(n, w.srv.now())
}
