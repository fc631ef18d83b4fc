package control

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/tailplane/tailplane/policy"
	"github.com/tailplane/tailplane/schema"
)

// configChanged runs inside Install once the new config is installed:
// it prunes what the config no longer declares and starts tracking the
// config's propagation to the live sessions (see WaitPropagated).
func (w *world) configChanged(ctx context.Context) {
	w.pruneUndeclared(ctx)
	live := make([]*session, 0, len(w.live))
	for _, n := range w.live {
		live = append(live, n.sess)
	}
	w.srv.prop.start(live)
}

// pruneUndeclared logs out the nodes the installed config no longer
// declares an owner for: nodes of a user that was removed, and tagged
// nodes none of whose tags is in tagOwners any more. Ephemeral ones are
// removed. Their sessions end and the caller's full netmaps drop them
// from their peers. Tagged nodes that keep some of their tags lose the
// others. (A removed auth key needs nothing here: registration only
// accepts declared keys.) It reports whether it logged out or changed any
// node.
func (w *world) pruneUndeclared(ctx context.Context) (changed bool) {
	nodes := slices.SortedFunc(maps.Values(w.nodes), func(a, b *node) int { return cmp.Compare(a.id, b.id) })
	for _, n := range nodes {
		if n.loggedOut {
			continue
		}
		why := undeclaredOwner(n, w.tailnet, w.compiled)
		if why == "" {
			changed = w.dropUndeclaredTags(ctx, n) || changed
			continue
		}
		changed = true
		w.srv.logf("control: logging out node %q (%d): %s", n.givenName, n.id, why)
		// Quiet: the caller re-evaluates the whole tailnet. A node whose
		// logout was not saved is cut off in memory all the same; only a
		// restart before its next save would let it back in.
		if err := w.leave(ctx, n, loggingOut, "node logged out: "+why, true); err != nil {
			w.srv.logf("control: logging out node %d: %v", n.id, err)
		}
	}
	return changed
}

// dropUndeclaredTags removes from a tagged node the tags that are no
// longer in tagOwners, when it keeps at least one, and reports whether it
// did.
func (w *world) dropUndeclaredTags(ctx context.Context, n *node) bool {
	kept := declaredTags(n, w.compiled)
	if len(kept) == len(n.tags) || len(kept) == 0 {
		return false
	}
	w.srv.logf("control: node %q (%d): tags %v are no longer declared in tagOwners; keeping %v", n.givenName, n.id, n.tags, kept)
	n.tags = kept
	if err := w.saveNode(ctx, n); err != nil {
		w.srv.logf("control: saving node %d: %v", n.id, err)
	}
	return true
}

// declaredTags returns the tags of n that p's tagOwners declares: n.tags
// itself when it declares them all.
func declaredTags(n *node, p *policy.Policy) []string {
	undeclared := func(t string) bool { _, ok := p.TagOwners(t); return !ok }
	if !slices.ContainsFunc(n.tags, undeclared) {
		return n.tags
	}
	return slices.DeleteFunc(slices.Clone(n.tags), undeclared)
}

// undeclaredOwner says why n's owner is not declared in config t
// (compiled to p), or "" when it is: then installing t keeps n logged in.
func undeclaredOwner(n *node, t *schema.Tailnet, p *policy.Policy) string {
	if !n.tagged() {
		if _, ok := t.Users[n.userLogin]; !ok {
			return fmt.Sprintf("user %s is no longer declared", n.userLogin)
		}
		return ""
	}
	if len(declaredTags(n, p)) > 0 {
		return ""
	}
	return fmt.Sprintf("none of its tags %v is declared in tagOwners any more", n.tags)
}

// NodeCounts reports how many nodes are registered and logged in (total)
// and how many of them hold a live map session (online), here or, with
// replicas, on another replica (see LocalNodeCount).
func (s *Server) NodeCounts(ctx context.Context) (online, total int, err error) {
	err = s.do(ctx, func(w *world) error {
		for _, n := range w.nodes {
			if !n.loggedOut {
				total++
			}
			if n.online {
				online++
			}
		}
		return nil
	})
	return online, total, err
}
