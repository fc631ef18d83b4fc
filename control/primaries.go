package control

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tailplane/tailplane/policy"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
)

// Persisting the primary-router elections.
//
// The policy engine's elections are sticky (see policy.PrimaryKey): who
// is primary depends on who was. The owner goroutine keeps the outcome it
// last handed on (world.primaries) and, when a new policy result elects
// differently, hands the new outcome to the primariesWriter, which writes
// it to the store off the owner goroutine. New loads the saved outcome and
// gives it to the first evaluation, so a restart keeps the primaries.

// primariesFromStore converts saved election outcomes for the policy
// engine. A row whose prefix does not parse is logged and skipped: its
// subnet is elected afresh.
func primariesFromStore(rows []store.PrimaryRoute, logf func(string, ...any)) policy.Primaries {
	out := make(policy.Primaries, len(rows))
	for _, r := range rows {
		p, err := netip.ParsePrefix(r.Prefix)
		if err != nil {
			logf("control: ignoring saved primary router %d of %q (via %q), elected afresh: %v", r.NodeID, r.Prefix, r.Via, err)
			continue
		}
		out[policy.PrimaryKey{Prefix: p, Via: r.Via}] = tailcfg.NodeID(r.NodeID)
	}
	return out
}

// primariesToStore converts election outcomes to store rows, sorted.
func primariesToStore(p policy.Primaries) []store.PrimaryRoute {
	out := make([]store.PrimaryRoute, 0, len(p))
	for k, id := range p {
		out = append(out, store.PrimaryRoute{Prefix: k.Prefix.String(), Via: k.Via, NodeID: int64(id)})
	}
	slices.SortFunc(out, func(a, b store.PrimaryRoute) int {
		if c := strings.Compare(a.Prefix, b.Prefix); c != 0 {
			return c
		}
		return strings.Compare(a.Via, b.Via)
	})
	return out
}

// notePrimaries hands res's election outcome to the writer when it differs
// from the one last handed on. Without a writer (a world built by a
// benchmark), or while another replica decides (primarylead.go), it only
// remembers it.
func (w *world) notePrimaries(res *policy.Result) {
	p := res.Primaries()
	if maps.Equal(p, w.primaries) {
		return
	}
	w.primaries = p
	if w.srv.primariesOut != nil && !w.lead.follow {
		w.srv.primariesOut.hand(p)
	}
}

// primariesWriter saves election outcomes to the store on its own
// goroutine, so the owner goroutine never waits on a write. Outcomes
// handed on faster than they are written are coalesced: only the latest
// is written.
type primariesWriter struct {
	store *store.Store
	logf  func(string, ...any)
	wake  chan struct{} // buffered (1): something is pending
	stop  chan struct{} // closed by close
	done  chan struct{} // closed when the goroutine has ended

	mu      sync.Mutex       // guards the field below
	pending policy.Primaries // the latest outcome not yet written; nil if none
}

// newPrimariesWriter starts a writer to st.
func newPrimariesWriter(st *store.Store, logf func(string, ...any)) *primariesWriter {
	pw := &primariesWriter{
		store: st,
		logf:  logf,
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go pw.run()
	return pw
}

// hand queues p (which the caller must not modify afterwards) for writing.
func (pw *primariesWriter) hand(p policy.Primaries) {
	pw.mu.Lock()
	pw.pending = p
	pw.mu.Unlock()
	select {
	case pw.wake <- struct{}{}:
	default: // already signalled
	}
}

// close writes what is still pending and stops the writer. Call it after
// the owner goroutine has stopped, so nothing is handed on afterwards.
func (pw *primariesWriter) close() {
	close(pw.stop)
	<-pw.done
}

func (pw *primariesWriter) run() {
	defer close(pw.done)
	for {
		select {
		case <-pw.wake:
			pw.flush()
		case <-pw.stop:
			pw.flush()
			return
		}
	}
}

// flush writes the pending outcome, if any. A failed write is logged; the
// next change writes the whole outcome again. With replicas the write is
// fenced: only the applier, the replica that decides, saves its outcome
// (and the store tells the others); another's is refused.
func (pw *primariesWriter) flush() {
	pw.mu.Lock()
	p := pw.pending
	pw.pending = nil
	pw.mu.Unlock()
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := pw.store.SetPrimaryRoutes(pw.store.WithApplierFence(ctx), primariesToStore(p))
	if errors.Is(err, store.ErrNotApplier) {
		pw.logf("control: not saving the primary routers: the replica applying revisions decides them, and this one is not it (yet)")
		return
	}
	if err != nil {
		pw.logf("control: saving the primary routers (a restart may elect others until the next change saves them): %v", err)
	}
}
