package control

import (
	"context"
	"fmt"

	"github.com/tailplane/tailplane/policy"
	"tailscale.com/tailcfg"
)

// Access answers the console's policy explorer from the served policy as
// evaluated against the nodes now: the nodes node id may reach (out) and
// those that may reach it (in), rule by rule (policy.Result.Access). A
// node the policy does not see (pending approval, logged out) gets nil
// lists; an unknown node an error wrapping ErrNodeNotFound.
func (s *Server) Access(ctx context.Context, id tailcfg.NodeID) (out, in []policy.Access, err error) {
	err = s.do(ctx, func(w *world) error {
		if w.nodes[id] == nil {
			return fmt.Errorf("node %d: %w (hint: `tailplane nodes list` shows the IDs)", id, ErrNodeNotFound)
		}
		if w.res != nil {
			out, in = w.res.Access(id)
		}
		return nil
	})
	return out, in, err
}
