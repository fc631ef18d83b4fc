package replica

import (
	"context"
	"sync"
)

// Primary routers. One replica decides the subnet routers' elections, the
// others install its outcome (control.DecidePrimaries, FollowPrimaries):
// the applier decides, so the handover follows the lease. The decider
// saves its outcome under the applier fence, which notifies the others
// (store.NotifyPrimaries); a follower reads it then, after (re)connecting
// its listener, and at every heartbeat, which also catches a notification
// missed.

// primaryLead records what the coordination server was last told.
type primaryLead struct {
	mu       sync.Mutex // guards the field below; held while telling the server
	deciding bool       // the server decides (DecidePrimaries)
}

// syncPrimaries tells the coordination server whether it decides: it does
// while this replica is the applier; else it installs the outcome the
// store holds. Calls are serialized, and each reads the applier flag
// under the lock, so the last one told reflects the latest heartbeat.
func (r *Replica) syncPrimaries(ctx context.Context) {
	r.lead.mu.Lock()
	defer r.lead.mu.Unlock()
	if r.Applier() {
		if r.lead.deciding {
			return
		}
		if err := r.ctrl.DecidePrimaries(ctx); err != nil {
			r.cfg.Logf("replica %s: taking over the primary routers' elections: %v", r.ID(), err)
			return
		}
		r.lead.deciding = true
		r.cfg.Logf("replica %s: deciding the primary routers' elections", r.ID())
		return
	}
	rows, err := r.st.PrimaryRoutes(ctx)
	if err == nil {
		err = r.ctrl.FollowPrimaries(ctx, rows)
	}
	if err != nil {
		if ctx.Err() == nil {
			r.cfg.Logf("replica %s: installing the deciding replica's primary routers: %v", r.ID(), err)
		}
		return
	}
	r.lead.deciding = false
}
