// Package replica makes a tailplane server one of several on one
// PostgreSQL database, serving one tailnet behind one URL. It connects the
// server's store, coordination server and pipeline to the other replicas:
//
//	heartbeat   every Heartbeat, the replica's lease in the store (store.Heartbeat);
//	            the live replica that started first is the applier, the only one
//	            whose pipeline applies revisions (under store.WithApplierFence);
//	            a replica whose lease lapsed is gone: control.ReplicaGone
//	listen      the other replicas' notifications (store.Listen), entered in order:
//	            node      → control.ReloadNodes (a registration, logout, delete, ...)
//	            revision  → the pipeline installs the applied revision (Changed)
//	            runtime   → control.RemoteRuntime (online, endpoints, disco key, home DERP)
//	            hello     → this replica's whole runtime, for one that just (re)connected
//	            sync      → the applier's pipeline syncs (a webhook reached another replica)
//	            primaries → control.FollowPrimaries, unless this replica decides them
//	            login     → the waits on that login read it again (OnLogin)
//	fan-out     control.Config.Fanout → Publish: runtime changes coalesced per node
//	            and sent in batches of at most store.MaxNotifyBody bytes
//	primaries   the applier decides the subnet routers' elections, the others
//	            install its outcome (see primaries.go)
//	relays      each lease carries the replica's relay (Config.DERPNode); when the
//	            live replicas' relays change, Config.SetDERPPeers meshes with them
//
// Runtime state never reaches a table: it travels only as notifications.
// After (re)connecting its listener a replica reads what it may have
// missed from the store (all nodes, the latest revision) and says hello.
//
//	New(Config) *Replica; (*Replica).Publish (the control hook)
//	(*Replica).Start(ctx, *control.Server) error; Close() error
//	(*Replica).Applier() bool, Fence(ctx), Changed()   // pipeline.Replica
//	(*Replica).Status(ctx) (Status, error)             // the admin API's /api/v1/replicas
package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
)

// Config configures a Replica. Store is required and must be on PostgreSQL.
type Config struct {
	Store *store.Store
	// Address is where this replica listens, as the status shows it (the
	// replicas share one server URL).
	Address string
	// Heartbeat is how often the lease is renewed; zero means 2 s.
	Heartbeat time.Duration
	// LeaseTTL is how long a lease holds without a heartbeat: the time
	// after a replica dies that its nodes go offline elsewhere and another
	// replica may apply revisions. Zero means 5 heartbeats; it is never
	// less than 2.
	LeaseTTL time.Duration
	// DERPNode is the replica's embedded relay as the other replicas'
	// relays mesh with it; nil means none.
	DERPNode *tailcfg.DERPNode
	// SetDERPPeers, when set with DERPNode, is handed the other live
	// replicas' relays whenever they change (server.Server.SetDERPMeshPeers:
	// the relay meshes with them and the DERP map lists them).
	SetDERPPeers func(ctx context.Context, peers []*tailcfg.DERPNode) error
	// Logf logs what happens among the replicas; nil means log.Printf.
	Logf func(format string, args ...any)
}

// Notification kinds this package sends (besides the store's own).
const (
	notifyRuntime = "runtime" // body: a JSON array of control.RuntimeState
	notifyHello   = "hello"   // body empty: send me your whole runtime
	notifySync    = "sync"    // body empty: the applier's pipeline syncs (a webhook reached another replica)
)

// Replica is this server's membership among the replicas.
type Replica struct {
	cfg     Config
	st      *store.Store
	ctrl    *control.Server
	changed chan struct{} // size 1; see Changed
	wake    chan struct{} // size 1; the sender has something to send
	stop    context.CancelFunc
	wg      sync.WaitGroup
	lead    primaryLead // who decides the primary routers; see primaries.go

	mu       sync.Mutex                              // guards the fields below
	pending  map[tailcfg.NodeID]control.RuntimeState // runtime changes not sent yet, the latest per node
	applier  bool                                    // this replica applies revisions
	lastBeat time.Time                               // when the last heartbeat succeeded
	live     map[string]bool                         // other replicas live at the last heartbeat
	onSync   func()                                  // see OnSync
	onLogin  func(id string)                         // see OnLogin (logins.go)
	// meshed is the list of relays last handed to SetDERPPeers (their
	// JSON, one a line), meshedOnce whether it was handed one at all.
	meshed     string
	meshedOnce bool
}

// New makes a Replica; Publish may be used at once, and Start connects it.
func New(cfg Config) (*Replica, error) {
	if cfg.Store == nil || cfg.Store.ReplicaID() == "" {
		return nil, errors.New("replica: Config needs a Store on PostgreSQL (replicas share one PostgreSQL database)")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 5 * cfg.Heartbeat
	}
	cfg.LeaseTTL = max(cfg.LeaseTTL, 2*cfg.Heartbeat)
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	return &Replica{
		cfg: cfg, st: cfg.Store,
		changed: make(chan struct{}, 1), wake: make(chan struct{}, 1),
		pending: map[tailcfg.NodeID]control.RuntimeState{}, live: map[string]bool{},
	}, nil
}

// ID is this replica's ID (the store handle's).
func (r *Replica) ID() string { return r.st.ReplicaID() }

// Start takes the first lease and starts the heartbeat, the listener and
// the sender; ctrl gets the other replicas' changes. Close stops them.
func (r *Replica) Start(ctx context.Context, ctrl *control.Server) error {
	r.ctrl = ctrl
	if err := r.beat(ctx); err != nil {
		return err
	}
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.stop = cancel
	r.wg.Add(3)
	go func() { defer r.wg.Done(); r.heartbeats(run) }()
	go func() { defer r.wg.Done(); r.listen(run) }()
	go func() { defer r.wg.Done(); r.send(run) }()
	return nil
}

// Close stops the replica's goroutines and removes its lease, so that
// the others mark its nodes offline (its map sessions end with it) and
// the next replica in line applies revisions, at their next heartbeat. A
// replica that dies without Close is gone once its lease lapses.
func (r *Replica) Close() error {
	if r.stop == nil {
		return nil
	}
	r.stop()
	r.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.st.LeaveReplicas(ctx)
}

// Applier reports whether this replica applies revisions now.
func (r *Replica) Applier() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applier
}

// Fence returns ctx for applying a revision: its store transaction fails
// unless this replica still is the applier when it runs.
func (r *Replica) Fence(ctx context.Context) context.Context { return r.st.WithApplierFence(ctx) }

// Changed receives a value when Applier may have changed or another
// replica recorded a revision. Changes coalesce; it has one reader (the
// pipeline).
func (r *Replica) Changed() <-chan struct{} { return r.changed }

func (r *Replica) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// OnSync sets what a sync request from another replica (SyncApplier)
// runs while this replica is the applier: its pipeline's Sync.
func (r *Replica) OnSync(f func()) {
	r.mu.Lock()
	r.onSync = f
	r.mu.Unlock()
}

// SyncApplier asks the applier to sync its source now, as a push webhook
// that reached this replica would have it. It never blocks.
func (r *Replica) SyncApplier() {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.st.Notify(ctx, notifySync, ""); err != nil {
			r.cfg.Logf("replica %s: asking the applier to sync: %v", r.ID(), err)
		}
	}()
}

// heartbeats renews the lease every Heartbeat until ctx ends.
func (r *Replica) heartbeats(ctx context.Context) {
	t := time.NewTicker(r.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.beat(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logf("replica %s: %v", r.ID(), err)
		}
	}
}

// beat renews the lease once and acts on what it read: the applier, and
// the replicas that are gone since.
func (r *Replica) beat(ctx context.Context) error {
	online := 0
	if r.ctrl != nil {
		on, err := r.ctrl.LocalNodeCount(ctx)
		if err != nil {
			return err
		}
		online = on
	}
	bctx, cancel := context.WithTimeout(ctx, r.cfg.LeaseTTL)
	rs, err := r.st.Heartbeat(bctx, store.Beat{Address: r.cfg.Address, Nodes: online, TTL: r.cfg.LeaseTTL, DERP: r.meshSelf()})
	cancel()
	now := time.Now()
	r.mu.Lock()
	if err != nil {
		if r.applier && now.Sub(r.lastBeat) >= r.cfg.LeaseTTL {
			r.applier = false // the lease lapsed: another replica may apply now
			r.mu.Unlock()
			r.signal()
			return fmt.Errorf("renewing the lease: %w; it lapsed, so this replica stopped applying revisions", err)
		}
		r.mu.Unlock()
		return fmt.Errorf("renewing the lease: %w", err)
	}
	lapsed := !r.lastBeat.IsZero() && now.Sub(r.lastBeat) >= r.cfg.LeaseTTL
	r.lastBeat = now
	wasApplier := r.applier
	live := map[string]bool{}
	var gone []string
	for _, x := range rs {
		if x.ID == r.ID() {
			r.applier = x.Applier
		} else if x.Live {
			live[x.ID] = true
		}
	}
	for id := range r.live {
		if !live[id] {
			gone = append(gone, id)
		}
	}
	r.live = live
	becameApplier := r.applier != wasApplier
	r.mu.Unlock()
	r.meshWith(ctx, rs)
	if becameApplier {
		r.cfg.Logf("replica %s: applying revisions: %v", r.ID(), !wasApplier)
		r.signal()
	}
	for _, id := range gone {
		if r.ctrl != nil {
			r.ctrl.ReplicaGone(ctx, id)
		}
	}
	if lapsed && r.ctrl != nil {
		// The others may have marked this replica's nodes offline.
		r.cfg.Logf("replica %s: the lease had lapsed; announcing its nodes again", r.ID())
		r.publishAll(ctx)
	}
	if r.ctrl != nil {
		r.syncPrimaries(ctx) // after ReplicaGone: a new decider fails the gone routers over itself
	}
	return nil
}

// meshSelf is this replica's relay as the others mesh with it (JSON).
func (r *Replica) meshSelf() string {
	if r.cfg.DERPNode == nil {
		return ""
	}
	b, _ := json.Marshal(r.cfg.DERPNode) // a DERPNode always encodes
	return string(b)
}

// meshWith hands SetDERPPeers the relays of the live replicas in rs other
// than this one, when they changed since the last time.
func (r *Replica) meshWith(ctx context.Context, rs []store.Replica) {
	if r.cfg.DERPNode == nil || r.cfg.SetDERPPeers == nil {
		return
	}
	var peers []*tailcfg.DERPNode
	var ids []string
	for _, x := range rs {
		n := new(tailcfg.DERPNode)
		if x.Live && x.ID != r.ID() && x.DERP != "" && json.Unmarshal([]byte(x.DERP), n) == nil {
			peers = append(peers, n)
			ids = append(ids, x.DERP)
		}
	}
	key := strings.Join(ids, "\n")
	r.mu.Lock()
	same := r.meshed == key && r.meshedOnce
	r.mu.Unlock()
	if same {
		return
	}
	if err := r.cfg.SetDERPPeers(ctx, peers); err != nil {
		r.cfg.Logf("replica %s: meshing with the other replicas' relays: %v", r.ID(), err)
		return
	}
	r.mu.Lock()
	r.meshed, r.meshedOnce = key, true
	r.mu.Unlock()
}

// publishAll queues the runtime of every node streaming here.
func (r *Replica) publishAll(ctx context.Context) {
	states, err := r.ctrl.LocalRuntime(ctx)
	if err != nil {
		return
	}
	for _, st := range states {
		r.Publish(st)
	}
}

// Publish queues a node's runtime state for the other replicas; it never
// blocks (control.Config.Fanout).
func (r *Replica) Publish(st control.RuntimeState) {
	r.mu.Lock()
	r.pending[st.ID] = st
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// send sends the queued runtime changes, in batches, until ctx ends.
func (r *Replica) send(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		r.mu.Lock()
		states := make([]control.RuntimeState, 0, len(r.pending))
		for _, st := range r.pending {
			states = append(states, st)
		}
		clear(r.pending)
		r.mu.Unlock()
		for _, body := range batches(states, store.MaxNotifyBody) {
			if err := r.st.Notify(ctx, notifyRuntime, body); err != nil && ctx.Err() == nil {
				r.cfg.Logf("replica %s: publishing runtime state: %v", r.ID(), err)
			}
		}
	}
}

// batches encodes states as JSON arrays of at most limit bytes each.
func batches(states []control.RuntimeState, limit int) []string {
	var out []string
	buf := []byte{'['}
	for _, st := range states {
		b, err := json.Marshal(st)
		if err != nil {
			continue // a RuntimeState always encodes
		}
		if len(buf) > 1 && len(buf)+len(b)+1 > limit {
			out = append(out, string(append(buf, ']')))
			buf = []byte{'['}
		}
		if len(buf) > 1 {
			buf = append(buf, ',')
		}
		buf = append(buf, b...)
	}
	if len(buf) > 1 {
		out = append(out, string(append(buf, ']')))
	}
	return out
}

// listen receives the other replicas' notifications until ctx ends,
// connecting again (and catching up) when the connection is lost.
func (r *Replica) listen(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		l, err := r.st.Listen(ctx)
		if err != nil {
			r.cfg.Logf("replica %s: %v; trying again in %v", r.ID(), err, backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		r.catchUp(ctx)
		for {
			n, err := l.Next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.cfg.Logf("replica %s: %v; listening again", r.ID(), err)
				}
				break
			}
			r.handle(ctx, n)
		}
		l.Close()
	}
}

// catchUp reads what notifications missed while not listening may have
// said, and asks the others for their runtime.
func (r *Replica) catchUp(ctx context.Context) {
	if err := r.ctrl.ReloadNodes(ctx, nil); err != nil {
		r.cfg.Logf("replica %s: reading the nodes: %v", r.ID(), err)
	}
	r.signal()         // the pipeline reads the latest revision
	r.loginChanged("") // and every login wait here its login
	r.syncPrimaries(ctx)
	if err := r.st.Notify(ctx, notifyHello, ""); err != nil {
		r.cfg.Logf("replica %s: %v", r.ID(), err)
	}
}

// handle enters one notification.
func (r *Replica) handle(ctx context.Context, n store.Notification) {
	switch n.Kind {
	case store.NotifyNode:
		id, err := strconv.ParseInt(n.Body, 10, 64)
		if err == nil {
			err = r.ctrl.ReloadNodes(ctx, []tailcfg.NodeID{tailcfg.NodeID(id)})
		}
		if err != nil {
			r.cfg.Logf("replica %s: node %s changed on replica %s: %v", r.ID(), n.Body, n.Replica, err)
		}
	case store.NotifyRevision:
		r.signal()
	case store.NotifyPrimaries:
		r.syncPrimaries(ctx)
	case store.NotifyLogin:
		r.loginChanged(n.Body)
	case notifyRuntime:
		var states []control.RuntimeState
		if err := json.Unmarshal([]byte(n.Body), &states); err != nil {
			r.cfg.Logf("replica %s: runtime state from replica %s does not parse: %v", r.ID(), n.Replica, err)
			return
		}
		r.ctrl.RemoteRuntime(ctx, n.Replica, states)
	case notifyHello:
		r.publishAll(ctx)
	case notifySync:
		r.mu.Lock()
		f := r.onSync
		if !r.applier {
			f = nil // only the applier syncs; the others would pass it on again
		}
		r.mu.Unlock()
		if f != nil {
			f()
		}
	}
}

// Status is every replica as the store has them, for the admin API and
// `tailplane status`.
type Status struct {
	Self string `json:"self"` // the ID of the replica answering
	// Replicas are the lease rows, the applier first among the live ones;
	// a lapsed replica stays listed (Live false) for an hour.
	Replicas []store.Replica `json:"replicas"`
	// AppliedRevision is the ID of the latest recorded revision, and
	// AppliedBy the replica that applied it; empty when no replica did.
	AppliedRevision int64  `json:"appliedRevision,omitempty"`
	AppliedBy       string `json:"appliedBy,omitempty"`
}

// Status reads every replica's lease and who applied the latest revision.
func (r *Replica) Status(ctx context.Context) (*Status, error) {
	rs, err := r.st.Replicas(ctx)
	if err != nil {
		return nil, err
	}
	rev, by, err := r.st.AppliedBy(ctx)
	if err != nil {
		return nil, err
	}
	if rs == nil {
		rs = []store.Replica{}
	}
	return &Status{Self: r.ID(), Replicas: rs, AppliedRevision: rev, AppliedBy: by}, nil
}
