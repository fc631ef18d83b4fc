package control

import (
	"fmt"
	"net/http"

	"tailscale.com/types/key"
)

// noiseNode returns the registered node that nk names, for a request
// (map, set-dns, feature query) that came over the Noise session of machine
// mkey; otherwise the *mapError the request is answered with: 401 for a
// node key that is not registered or is logged out, 403 for another
// machine's. Callers check a zero node key themselves. On the owner
// goroutine.
func (w *world) noiseNode(mkey key.MachinePublic, nk key.NodePublic) (*node, error) {
	n := w.byKey[nk]
	switch {
	case n == nil:
		return nil, &mapError{http.StatusUnauthorized, fmt.Sprintf("node key %s is not registered; run `tailscale up` (with `--auth-key=KEY` on a server without interactive login)", nk.ShortString())}
	case n.machine != mkey:
		return nil, &mapError{http.StatusForbidden, fmt.Sprintf("node key %s belongs to a different machine", nk.ShortString())}
	case n.loggedOut:
		return nil, &mapError{http.StatusUnauthorized, "node is logged out; run `tailscale up` to log in again (with `--auth-key=KEY` on a server without interactive login)"}
	}
	return n, nil
}
