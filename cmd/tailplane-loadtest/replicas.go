package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tailplane/tailplane/internal/localsvc"
)

// cluster is what a replicas run starts besides the replicas: a throwaway
// PostgreSQL cluster and HAProxy in front of the replicas.
type cluster struct {
	pg *localsvc.Postgres
	lb *localsvc.HAProxy
}

func (c *cluster) stop() {
	if c == nil {
		return
	}
	if c.lb != nil {
		c.lb.Stop()
	}
	if c.pg != nil {
		c.pg.Stop()
	}
}

// replicasHAProxyConfig is HAProxy in TCP mode on listen, spreading
// connections over backends round robin (so each replica gets about a
// third of the nodes) with the health checks and session cut-off of
// docs/deploy.md's example, and a connection refused by a dead replica
// retried on another. maxconn covers every node with room to spare.
func replicasHAProxyConfig(listen string, backends []string, maxconn int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
	maxconn %d
defaults
	mode tcp
	timeout connect 2s
	timeout client 1h
	timeout server 1h
	timeout check 1s
	retries 3
	option redispatch
frontend tailplane
	bind %s
	default_backend replicas
backend replicas
	balance roundrobin
	default-server check inter 1s fall 2 rise 2 on-marked-down shutdown-sessions
`, maxconn, listen)
	for i, addr := range backends {
		fmt.Fprintf(&b, "\tserver replica%d %s\n", i+1, addr)
	}
	return b.String()
}

// startReplicas starts PostgreSQL, Replicas `tailplane serve` processes on
// one database following cfgDir (the first started applies revisions), and
// HAProxy in front of them; the nodes reach the replicas through HAProxy.
func (r *runner) startReplicas(ctx context.Context, cfgDir string) error {
	r.cl = &cluster{}
	var err error
	if r.cl.pg, err = localsvc.StartPostgres(ctx); err != nil {
		return fmt.Errorf("--replicas: %w", err)
	}
	dbURL, err := r.cl.pg.CreateDatabase(ctx, "loadtest")
	if err != nil {
		return err
	}
	urlFile := filepath.Join(r.opt.WorkDir, "database-url")
	if err := os.WriteFile(urlFile, []byte(dbURL), 0o600); err != nil {
		return fmt.Errorf("writing the database URL file: %w", err)
	}
	lbAddr, err := localsvc.FreeLoopbackAddr()
	if err != nil {
		return err
	}
	var backends []string
	for i := range r.opt.Replicas {
		addr, err1 := localsvc.FreeLoopbackAddr()
		derp, err2 := localsvc.FreeLoopbackAddr()
		if err1 != nil || err2 != nil {
			return fmt.Errorf("finding free ports for replica %d: %v %v", i+1, err1, err2)
		}
		stateDir := filepath.Join(r.opt.WorkDir, fmt.Sprintf("state-%d", i+1))
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", stateDir, err)
		}
		p := &serverProc{bin: r.opt.TailplaneBin, configDir: cfgDir, stateDir: stateDir, listen: addr,
			logPath: filepath.Join(r.opt.WorkDir, fmt.Sprintf("serve-%d.log", i+1)),
			args:    []string{"--database-url-file", urlFile, "--server-url", "http://" + lbAddr, "--derp-listen", derp}}
		if i == 0 {
			p.args = append(p.args, debugArgs(r.opt.ServerDebug)...)
		}
		r.srvs = append(r.srvs, p)
		// One after the other: the first to start is the applier.
		if err := p.start(ctx); err != nil {
			return fmt.Errorf("replica %d: %w", i+1, err)
		}
		backends = append(backends, addr)
		r.opt.Logf("replica %d started on %s, relay %s (log %s)", i+1, addr, derp, p.logPath)
	}
	cfg := replicasHAProxyConfig(lbAddr, backends, 2*r.opt.Plan.Nodes+1000)
	if r.cl.lb, err = localsvc.StartHAProxy(ctx, cfg, lbAddr); err != nil {
		return err
	}
	r.sim.url = "http://" + lbAddr
	r.res.Replicas = r.opt.Replicas
	r.opt.Logf("HAProxy on %s in front of %d replicas on PostgreSQL", lbAddr, r.opt.Replicas)
	return nil
}

// replicaOf returns the index of the replica n streams to (by the relay
// its DERP map lists first), or -1.
func (r *runner) replicaOf(n *node) int {
	home := n.home.Load()
	for i, p := range r.srvs {
		if p.derpPort() == home {
			return i
		}
	}
	return -1
}

// derpPort is the port of the replica's --derp-listen, or -1.
func (p *serverProc) derpPort() int32 {
	for i, a := range p.args {
		if a == "--derp-listen" && i+1 < len(p.args) {
			if _, port, err := net.SplitHostPort(p.args[i+1]); err == nil {
				n, _ := strconv.Atoi(port)
				return int32(n)
			}
		}
	}
	return -1
}

// countPerReplica returns how many nodes stream to each replica (nil
// without replicas).
func (r *runner) countPerReplica() []int {
	if len(r.srvs) < 2 {
		return nil
	}
	count := make([]int, len(r.srvs))
	for _, n := range r.nodes {
		if i := r.replicaOf(n); i >= 0 {
			count[i]++
		}
	}
	return count
}

// leaseLapse is how long after a kill the killed replica's lease has
// surely lapsed: server.Config.ReplicaLease (10 s) after its last renewal
// (every 2 s), with a margin.
const leaseLapse = 15 * time.Second

// waitOnline waits until every node holds its peers, all of them online.
func (r *runner) waitOnline(ctx context.Context, what string) error {
	return r.waitAll(ctx, what, func(n *node) bool {
		return n.noff.Load() == 0 && n.npeers.Load() == int32(r.opt.Plan.expectedPeers(n.idx))
	})
}

// killReplica kills the first replica (the applier) with SIGKILL and
// waits until every node it served holds a new full netmap from another
// replica (through HAProxy) and every node holds exactly its peers.
func (r *runner) killReplica(ctx context.Context) error {
	victim := r.srvs[0]
	before := make([]int32, len(r.nodes))
	moved := make([]bool, len(r.nodes))
	for i, n := range r.nodes {
		before[i] = n.fulls.Load()
		moved[i] = r.replicaOf(n) == 0
		if moved[i] {
			r.res.KilledNodes++
		}
	}
	victim.kill()
	start := time.Now()
	r.opt.Logf("replica 1 (the applier, %d nodes) killed with SIGKILL", r.res.KilledNodes)
	if err := r.waitAll(ctx, "nodes back after a replica was killed", func(n *node) bool {
		if moved[n.idx] && (n.fulls.Load() <= before[n.idx] || r.replicaOf(n) <= 0) {
			return false
		}
		return n.npeers.Load() == int32(r.opt.Plan.expectedPeers(n.idx))
	}); err != nil {
		return err
	}
	d := secs(time.Since(start))
	r.res.ReplicaKillS = &d
	r.notePhase("replica-kill+recover")
	if err := r.verifyPeerSets(); err != nil {
		return fmt.Errorf("after a replica was killed: %w", err)
	}
	r.res.NodesPerReplicaAfter = r.countPerReplica()
	r.opt.Logf("every node back on a full netmap %.3f s after the kill (nodes per replica now %v)", d, r.res.NodesPerReplicaAfter)
	// Once the killed replica's lease has lapsed the others mark its nodes
	// offline; those nodes stream to them by now, so every peer must stay
	// (or come back) online.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(start.Add(leaseLapse))):
	}
	if err := r.waitOnline(ctx, "peers online after the killed replica's lease lapsed"); err != nil {
		return err
	}
	r.res.OnlineAfterLapse = true
	r.opt.Logf("every peer online %v after the kill, once the killed replica's lease lapsed", time.Since(start).Round(time.Millisecond))
	if r.opt.SkipCommit {
		return nil
	}
	return r.commitAfterKill(ctx)
}

// commitAfterKill writes revision 3 once the killed applier's lease has
// lapsed and waits until every node's packet filter carries it: another
// replica must have taken over applying revisions.
func (r *runner) commitAfterKill(ctx context.Context) error {
	d, err := r.commitRevision(ctx, 3, "a commit after the applier was killed")
	if err != nil {
		return err
	}
	r.res.CommitAfterKillS = &d
	r.notePhase("commit-after-kill")
	r.opt.Logf("a commit after the kill reached every node %.3f s after the config was written (applied by a survivor)", d)
	return nil
}
