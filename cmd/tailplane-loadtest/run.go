package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/tailplane/tailplane/internal/localsvc"
	"tailscale.com/control/ts2021"
	"tailscale.com/net/netmon"
	"tailscale.com/net/tsdial"
	"tailscale.com/types/key"
)

// options configure one load test run. The zero value is not runnable:
// Plan.Nodes and either TailplaneBin (self-started server) or Server and
// AuthKey (an external server, full mesh only) are needed.
type options struct {
	Plan         plan
	TailplaneBin string        // self-start: the tailplane binary
	WorkDir      string        // self-start: config and state live here
	Server       string        // external: the server's URL
	AuthKey      string        // external: a reusable auth key; never logged
	Concurrency  int           // registrations in flight; 0 means 64
	Rounds       int           // endpoint changes of the probe; 0 means 5
	RoundGap     time.Duration // pause before each change; 0 means 1.1 s
	SkipCommit   bool          // no policy commit (always for --server)
	SkipRestart  bool          // no kill -9 and restart (always for --server)
	Timeout      time.Duration // per phase; 0 means 5m
	Replicas     int           // self-start: 2 or more replicas on PostgreSQL behind HAProxy; 0 or 1: one server on SQLite
	MemProfile   string        // write a heap profile here once converged; empty: none
	// ServerDebug is the self-started server's --debug-listen (with
	// Replicas, the first replica's), for go tool pprof during a run;
	// empty: none.
	ServerDebug string
	Logf        func(format string, args ...any)
}

// result is what a run measured; the JSON names are the --json output.
type result struct {
	Nodes          int      `json:"nodes"`
	Policy         string   `json:"policy"`
	GroupSize      int      `json:"groupSize,omitempty"`
	Services       int      `json:"services,omitempty"`
	RegisterS      float64  `json:"registerSeconds"`
	FirstNetmapS   float64  `json:"firstNetmapSeconds"`
	ConvergeS      float64  `json:"convergeSeconds"`
	Converged      bool     `json:"converged"`
	PeerSetsExact  bool     `json:"peerSetsExact"`
	Propagation    latency  `json:"endpointPropagation"`
	CommitS        *float64 `json:"commitSeconds,omitempty"`
	ReconnectS     *float64 `json:"reconnectSeconds,omitempty"`
	ServerCPUS     *float64 `json:"serverCPUSeconds,omitempty"`
	ServerPeakRSS  int64    `json:"serverPeakRSSBytes,omitempty"`
	RestartPeakRSS int64    `json:"restartPeakRSSBytes,omitempty"`
	PhaseCPU       []phase  `json:"phaseCPU"`
	// Replicas runs (Replicas >= 2).
	Replicas             int      `json:"replicas,omitempty"`
	NodesPerReplica      []int    `json:"nodesPerReplica,omitempty"` // after convergence, by the relay each node's DERP map puts first
	NodesPerReplicaAfter []int    `json:"nodesPerReplicaAfterKill,omitempty"`
	CrossReplica         *latency `json:"crossReplicaPropagation,omitempty"`
	ReplicaKillS         *float64 `json:"replicaKillRecoverySeconds,omitempty"`
	KilledNodes          int      `json:"killedReplicaNodes,omitempty"`     // nodes the killed replica served
	OnlineAfterLapse     bool     `json:"peersOnlineAfterLease,omitempty"`  // every node saw every peer online once the killed replica's lease lapsed
	CommitAfterKillS     *float64 `json:"commitAfterKillSeconds,omitempty"` // a commit once the killed applier's lease lapsed, to every node
	ReplicaPeakRSS       []int64  `json:"replicaPeakRSSBytes,omitempty"`
	ClientHeapNode       int64    `json:"clientHeapBytesPerNode"`
	ClientPeakRSS        int64    `json:"clientPeakRSSBytes"`
	ClientCPUS           float64  `json:"clientCPUSeconds"`
}

// phase is the CPU one phase took: the server's (all replicas together)
// and the load generator's own, measured apart.
type phase struct {
	Name       string  `json:"name"`
	CPUS       float64 `json:"cpuSeconds"`
	ClientCPUS float64 `json:"clientCPUSeconds"`
	// What the nodes received in the phase, all together: map frames,
	// their JSON (decompressed) and how many of them were full netmaps.
	Frames      int64 `json:"frames"`
	MapBytes    int64 `json:"mapBytes"`
	FullNetmaps int64 `json:"fullNetmaps"`
	// StreamsEnded counts map streams that ended or failed to open (each
	// is followed by a redial): reconnect attempts.
	StreamsEnded int64 `json:"streamsEnded"`
}

// runner holds one run's state.
type runner struct {
	opt     options
	sim     *sim
	nodes   []*node
	srvs    []*serverProc // the self-started server, or the replicas; none for an external server
	cl      *cluster      // PostgreSQL and HAProxy of a replicas run, else nil
	secrets map[string]string
	res     result
	cpuMark time.Duration
	genMark time.Duration // the load generator's own CPU at the last phase
	rxMark  [4]int64      // frames, bytes, full netmaps and ended streams until the last phase
}

func (o options) withDefaults() options {
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Rounds <= 0 {
		o.Rounds = 5
	}
	if o.RoundGap <= 0 {
		o.RoundGap = 1100 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Server != "" {
		o.SkipCommit, o.SkipRestart = true, true
	}
	return o
}

// run performs one load test and returns what it measured. ctx ending
// stops it; a self-started server is stopped before run returns.
func run(ctx context.Context, opt options) (*result, error) {
	opt = opt.withDefaults()
	if err := opt.Plan.check(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &runner{opt: opt, sim: &sim{}}
	r.res = result{Nodes: opt.Plan.Nodes, Policy: opt.Plan.Policy}
	if opt.Plan.Policy == policySegmented {
		r.res.GroupSize, r.res.Services = opt.Plan.groupSize(), opt.Plan.Services
	}
	err := r.setup(ctx)
	defer func() {
		for _, p := range r.srvs {
			p.stop()
		}
		r.cl.stop()
		for _, n := range r.nodes {
			if n != nil && n.c != nil {
				n.c.Close()
			}
		}
	}()
	if err != nil {
		return nil, err
	}
	var polls sync.WaitGroup
	defer polls.Wait()
	defer cancel()
	steps := []func(context.Context, *sync.WaitGroup) error{r.register, r.propagate, r.commit, r.restart}
	for _, step := range steps {
		if err := step(ctx, &polls); err != nil {
			return &r.res, err
		}
	}
	return &r.res, nil
}

// setup writes the config and starts the server, or checks the external one.
func (r *runner) setup(ctx context.Context) error {
	p := r.opt.Plan
	var err error
	if r.opt.Server != "" {
		if r.opt.Replicas > 1 {
			return errors.New("--replicas starts its own replicas; it does not go with --server")
		}
		if p.Policy != policyFull || r.opt.AuthKey == "" {
			return errors.New("--server needs --auth-key and --policy full (the generated segmented policy must be served by the load generator itself)")
		}
		r.sim.url = r.opt.Server
		r.secrets = map[string]string{"fleet": r.opt.AuthKey}
	} else {
		if r.secrets, err = newSecrets(p); err != nil {
			return err
		}
		if err := r.startServers(ctx); err != nil {
			return err
		}
	}
	if r.sim.serverKey, err = fetchServerKey(ctx, r.sim.url); err != nil {
		return fmt.Errorf("fetching the server's Noise key (is %s a tailplane server?): %w", r.sim.url, err)
	}
	r.sim.dialer = tsdial.NewDialer(netmon.NewStatic())
	r.nodes = make([]*node, p.Nodes)
	for i := range r.nodes {
		n := &node{idx: i, mk: key.NewMachine(), nk: key.NewNode(), dk: key.NewDisco()}
		n.epPort.Store(int32(10000 + i%50000))
		if n.c, err = ts2021.NewClient(ts2021.ClientOpts{
			ServerURL: r.sim.url, PrivKey: n.mk, ServerPubKey: r.sim.serverKey,
			Dialer: r.sim.dialer, Logf: func(string, ...any) {},
		}); err != nil {
			return fmt.Errorf("node %d: Noise client: %w", i, err)
		}
		r.nodes[i] = n
	}
	r.markCPU()
	r.genMark = selfCPU()
	return nil
}

// startServers writes the config and starts the server, or with
// Replicas the database, the replicas and HAProxy.
func (r *runner) startServers(ctx context.Context) error {
	cfgDir := filepath.Join(r.opt.WorkDir, "config")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", cfgDir, err)
	}
	if err := writeConfig(cfgDir, r.opt.Plan, r.secrets, 1); err != nil {
		return err
	}
	if r.opt.Replicas >= 2 {
		return r.startReplicas(ctx, cfgDir)
	}
	stateDir := filepath.Join(r.opt.WorkDir, "state")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", stateDir, err)
	}
	addr, err := localsvc.FreeLoopbackAddr()
	if err != nil {
		return err
	}
	srv := &serverProc{bin: r.opt.TailplaneBin, configDir: cfgDir, stateDir: stateDir, listen: addr, logPath: filepath.Join(r.opt.WorkDir, "serve.log"),
		args: debugArgs(r.opt.ServerDebug)}
	r.srvs = []*serverProc{srv}
	if err := srv.start(ctx); err != nil {
		return err
	}
	r.sim.url = srv.url()
	r.opt.Logf("tailplane serve started on %s (log %s)", addr, srv.logPath)
	return nil
}

// markCPU returns the server CPU (every replica's) used since the last mark.
func (r *runner) markCPU() time.Duration {
	var c time.Duration
	for _, p := range r.srvs {
		c += p.sampleCPU()
	}
	d := c - r.cpuMark
	r.cpuMark = c
	return d
}

func (r *runner) notePhase(name string) {
	gen := selfCPU()
	ph := phase{Name: name, ClientCPUS: secs(gen - r.genMark)}
	r.genMark = gen
	if len(r.srvs) > 0 {
		ph.CPUS = secs(r.markCPU())
		total := secs(r.cpuMark)
		r.res.ServerCPUS = &total
	}
	var rx [4]int64
	for _, n := range r.nodes {
		rx[0] += n.frames.Load()
		rx[1] += n.bytes.Load()
		rx[2] += int64(n.fulls.Load())
		rx[3] += int64(n.streams.Load())
	}
	ph.Frames, ph.MapBytes, ph.FullNetmaps, ph.StreamsEnded = rx[0]-r.rxMark[0], rx[1]-r.rxMark[1], rx[2]-r.rxMark[2], rx[3]-r.rxMark[3]
	r.rxMark = rx
	r.res.PhaseCPU = append(r.res.PhaseCPU, ph)
	r.res.ClientCPUS = secs(gen)
}

// register registers every node, opens its map stream and waits until
// every node holds exactly the peers its policy gives it.
func (r *runner) register(ctx context.Context, polls *sync.WaitGroup) error {
	start := time.Now()
	sem := make(chan struct{}, r.opt.Concurrency)
	errs := make(chan error, len(r.nodes))
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := n.register(ctx, r.secrets[r.opt.Plan.keyName(n.idx)]); err != nil {
				errs <- err
				return
			}
			polls.Add(1)
			go func() { defer polls.Done(); n.poll(ctx, r.sim) }()
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	r.res.RegisterS = secs(time.Since(start))
	r.opt.Logf("%d nodes registered in %v", len(r.nodes), time.Since(start).Round(time.Millisecond))
	if err := r.waitAll(ctx, "first netmaps", func(n *node) bool { return n.firstAt.Load() != 0 }); err != nil {
		return err
	}
	var lastFirst int64
	for _, n := range r.nodes {
		lastFirst = max(lastFirst, n.firstAt.Load())
	}
	r.res.FirstNetmapS = secs(time.Duration(lastFirst - start.UnixNano()))
	if err := r.waitAll(ctx, "convergence", func(n *node) bool {
		return n.npeers.Load() == int32(r.opt.Plan.expectedPeers(n.idx))
	}); err != nil {
		return err
	}
	r.res.ConvergeS = secs(time.Since(start))
	r.res.Converged = true
	r.notePhase("register+converge")
	err := r.verifyPeerSets()
	r.res.PeerSetsExact = err == nil
	if err != nil {
		return err
	}
	r.res.NodesPerReplica = r.countPerReplica()
	r.measureClient()
	if r.opt.MemProfile != "" {
		if err := writeHeapProfile(r.opt.MemProfile); err != nil {
			return err
		}
	}
	r.opt.Logf("converged %v after the first registration", time.Since(start).Round(time.Millisecond))
	return nil
}

// waitAll waits until ok holds for every node, up to the phase timeout.
func (r *runner) waitAll(ctx context.Context, what string, ok func(*node) bool) error {
	deadline := time.Now().Add(r.opt.Timeout)
	next := 0
	for {
		for next < len(r.nodes) && ok(r.nodes[next]) {
			next++
		}
		if next == len(r.nodes) {
			// Re-check all once: an earlier node may have changed since.
			next = 0
			for next < len(r.nodes) && ok(r.nodes[next]) {
				next++
			}
			if next == len(r.nodes) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			n := r.nodes[next]
			return fmt.Errorf("%s: node %d (id %d) not there after %v: it holds %d peers (%d of them offline), want %d; filter revision %d, %d full netmaps, %d streams ended (hint: see the server log)",
				what, n.idx, n.id.Load(), r.opt.Timeout, n.npeers.Load(), n.noff.Load(), r.opt.Plan.expectedPeers(n.idx), n.rev.Load(), n.fulls.Load(), n.streams.Load())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// verifyPeerSets checks every node holds exactly its expected peers (not
// just the right number).
func (r *runner) verifyPeerSets() error {
	ids := make([]int64, len(r.nodes))
	for i, n := range r.nodes {
		ids[i] = n.id.Load()
	}
	for i, n := range r.nodes {
		n.mu.Lock()
		for _, rg := range r.opt.Plan.peerRanges(i) {
			for j := rg[0]; j < rg[1]; j++ {
				if j != i && !n.peers.has(ids[j]) {
					n.mu.Unlock()
					return fmt.Errorf("node %d lacks peer node %d (id %d) its policy gives it", i, j, ids[j])
				}
			}
		}
		n.mu.Unlock()
	}
	return nil
}

// measureClient records the load generator's own heap per node and RSS.
func (r *runner) measureClient() {
	runtime.GC() // twice: idle frame buffers in sync.Pools survive one
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.res.ClientHeapNode = int64(ms.HeapInuse) / int64(len(r.nodes))
	r.res.ClientPeakRSS, _ = procHWM(os.Getpid())
}

// debugArgs are serve's flags for a debug listener on addr, if any.
func debugArgs(addr string) []string {
	if addr == "" {
		return nil
	}
	return []string{"--debug-listen", addr}
}
