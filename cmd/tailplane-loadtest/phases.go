package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"
)

// probeIndex is the node whose endpoint changes: a group member in a
// segmented plan, the last node of a full mesh.
func (r *runner) probeIndex() int {
	if r.opt.Plan.Policy == policySegmented {
		return r.opt.Plan.Services
	}
	return len(r.nodes) - 1
}

// propagate changes the probe's endpoint Rounds times and records, for
// every peer that sees the probe, the time until it holds the new one.
func (r *runner) propagate(ctx context.Context, _ *sync.WaitGroup) error {
	pi := r.probeIndex()
	probe := r.nodes[pi]
	r.sim.probeID.Store(probe.id.Load())
	var samples, cross []time.Duration
	probeReplica := r.replicaOf(probe)
	for round := range r.opt.Rounds {
		// The server applies one node's map-request state at most once per
		// update interval (1 s by default) and holds what comes sooner:
		// wait that out, so the figure is propagation, not the rate limit.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.opt.RoundGap):
		}
		port := uint16(60001 + round)
		sent := time.Now()
		if err := probe.setEndpoint(ctx, port); err != nil {
			return err
		}
		sees := func(n *node) bool { return !r.opt.Plan.sees(n.idx, pi) || n.probeEP.Load() == int32(port) }
		if err := r.waitAll(ctx, fmt.Sprintf("endpoint propagation round %d", round+1), sees); err != nil {
			return err
		}
		for _, n := range r.nodes {
			if r.opt.Plan.sees(n.idx, pi) {
				d := time.Duration(n.probeAt.Load() - sent.UnixNano())
				samples = append(samples, d)
				if len(r.srvs) > 1 && r.replicaOf(n) != probeReplica {
					cross = append(cross, d)
				}
			}
		}
	}
	r.res.Propagation = summarise(samples)
	if len(r.srvs) > 1 {
		c := summarise(cross)
		r.res.CrossReplica = &c
		r.opt.Logf("across replicas (the probe streams to replica %d): p50 %.1f ms, p99 %.1f ms over %d peer updates", probeReplica+1, c.P50Ms, c.P99Ms, c.Samples)
	}
	r.notePhase("endpoint-propagation")
	r.opt.Logf("endpoint change propagated: p50 %.1f ms, p99 %.1f ms over %d peer updates",
		r.res.Propagation.P50Ms, r.res.Propagation.P99Ms, len(samples))
	return nil
}

// commit writes revision 2 of the config into the watched directory and
// waits until every node's packet filter carries it, with unchanged peers.
func (r *runner) commit(ctx context.Context, _ *sync.WaitGroup) error {
	if r.opt.SkipCommit {
		return nil
	}
	d, err := r.commitRevision(ctx, 2, "commit propagation")
	if err != nil {
		return err
	}
	r.res.CommitS = &d
	r.notePhase("commit")
	r.opt.Logf("commit reached every node %.3f s after the config was written", d)
	return nil
}

// commitRevision writes revision rev of the config and returns the
// seconds from the write until the last node's packet filter carried it
// (every node also holding exactly its peers).
func (r *runner) commitRevision(ctx context.Context, rev int, what string) (float64, error) {
	start := time.Now()
	if err := writeConfig(r.srvs[0].configDir, r.opt.Plan, r.secrets, rev); err != nil {
		return 0, err
	}
	if err := r.waitAll(ctx, what, func(n *node) bool {
		return n.rev.Load() == int32(rev) && n.npeers.Load() == int32(r.opt.Plan.expectedPeers(n.idx))
	}); err != nil {
		return 0, err
	}
	var last int64
	for _, n := range r.nodes {
		last = max(last, n.revAt.Load())
	}
	return secs(time.Duration(last - start.UnixNano())), nil
}

// restart kills the server with SIGKILL, starts it again on the same
// address and state, and waits until every node holds a new full netmap
// with all its peers. With replicas it kills one instead (killReplica).
func (r *runner) restart(ctx context.Context, _ *sync.WaitGroup) error {
	r.sampleServers()
	if r.opt.SkipRestart {
		return nil
	}
	if len(r.srvs) > 1 {
		return r.killReplica(ctx)
	}
	srv := r.srvs[0]
	before := make([]int32, len(r.nodes))
	for i, n := range r.nodes {
		before[i] = n.fulls.Load()
	}
	srv.kill()
	start := time.Now()
	if err := srv.start(ctx); err != nil {
		return err
	}
	if err := r.waitAll(ctx, "reconnect after restart", func(n *node) bool {
		return n.fulls.Load() > before[n.idx] && n.npeers.Load() == int32(r.opt.Plan.expectedPeers(n.idx))
	}); err != nil {
		return err
	}
	d := secs(time.Since(start))
	r.res.ReconnectS = &d
	r.notePhase("restart+reconnect")
	if err := r.verifyPeerSets(); err != nil {
		return fmt.Errorf("after the restart: %w", err)
	}
	if err := r.waitOnline(ctx, "peers online after the restart"); err != nil {
		return err
	}
	r.res.RestartPeakRSS, _ = procHWM(srv.pid())
	r.opt.Logf("every node back on a full netmap %.3f s after the restart", d)
	return nil
}

// sampleServers records the servers' peak RSS (the highest replica's)
// before anything is killed.
func (r *runner) sampleServers() {
	for _, p := range r.srvs {
		rss, err := procHWM(p.pid())
		if err != nil {
			fmt.Fprintln(os.Stderr, "tailplane-loadtest:", err)
			continue
		}
		r.res.ServerPeakRSS = max(r.res.ServerPeakRSS, rss)
		if len(r.srvs) > 1 {
			r.res.ReplicaPeakRSS = append(r.res.ReplicaPeakRSS, rss)
		}
	}
}
