// Command tailplane-loadtest simulates many Tailscale nodes against a real
// `tailplane serve` and reports how the server copes: registration time,
// convergence, endpoint-change and commit propagation, reconnect after a
// kill -9, and the server's CPU and peak RSS, apart from its own. Each node
// speaks the real control protocol over Noise through Tailscale's own
// ts2021 client, but reads only the measured fields of each map message
// (mapScanner) and keeps only a peer bitset and a few counters, so one
// machine can drive 10,000. With --replicas it starts PostgreSQL, several
// replicas and HAProxy itself, and kills one. See docs/performance.md.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("tailplane-loadtest", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var opt options
	var asJSON, keep bool
	fs.IntVar(&opt.Plan.Nodes, "nodes", 100, "simulated nodes")
	fs.StringVar(&opt.Plan.Policy, "policy", policyFull, `"full" (every node sees every node) or "segmented" (groups plus shared services)`)
	fs.IntVar(&opt.Plan.GroupSize, "group-size", 200, "segmented: nodes per group")
	fs.IntVar(&opt.Plan.Services, "services", 3, "segmented: shared services every group reaches")
	fs.StringVar(&opt.TailplaneBin, "tailplane-bin", "", "tailplane binary to start (default: tailplane next to this binary, else in $PATH)")
	fs.StringVar(&opt.WorkDir, "work-dir", "", "directory for the generated config, state and server log (default: a temporary directory)")
	fs.BoolVar(&keep, "keep", false, "keep the temporary work directory")
	fs.StringVar(&opt.Server, "server", "", "URL of an already running server instead of starting one (full mesh of fresh nodes; no commit or restart)")
	authKeyEnv := fs.String("auth-key-env", "TAILPLANE_LOADTEST_AUTH_KEY", "with --server: environment variable holding a reusable auth key")
	fs.IntVar(&opt.Concurrency, "concurrency", 64, "registrations in flight")
	fs.IntVar(&opt.Rounds, "rounds", 5, "endpoint changes of the probe node")
	fs.DurationVar(&opt.RoundGap, "round-gap", 1100*time.Millisecond, "pause before each endpoint change (longer than the server's update interval, 1 s by default)")
	fs.BoolVar(&opt.SkipCommit, "skip-commit", false, "skip the policy commit")
	fs.BoolVar(&opt.SkipRestart, "skip-restart", false, "skip the kill -9 and restart")
	fs.IntVar(&opt.Replicas, "replicas", 0, "start this many replicas (2 or more) on a throwaway PostgreSQL behind HAProxy instead of one server on SQLite; the last phase then kills one with SIGKILL")
	fs.DurationVar(&opt.Timeout, "timeout", 5*time.Minute, "limit of each phase")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write the load generator's own CPU profile (pprof) to FILE")
	fs.StringVar(&opt.ServerDebug, "server-debug-listen", "", "start the server (with --replicas, the first replica) with --debug-listen ADDR, to profile it during the run with go tool pprof")
	memProfile := fs.String("memprofile", "", "write the load generator's heap profile (pprof) to FILE once every node converged")
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return 0
		}
		return 2
	}
	if opt.Server != "" {
		opt.AuthKey = os.Getenv(*authKeyEnv)
	} else {
		if err := prepareSelfStart(&opt, keep, stderr); err != nil {
			fmt.Fprintln(stderr, "tailplane-loadtest:", err)
			return 1
		}
		if opt.WorkDir != "" && !keep && !fs.Changed("work-dir") {
			defer os.RemoveAll(opt.WorkDir)
		}
	}
	if !asJSON {
		opt.Logf = func(format string, args ...any) {
			fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05.000")}, args...)...)
		}
	}
	if err := raiseFileLimit(opt.Plan.Nodes); err != nil {
		fmt.Fprintln(stderr, "tailplane-loadtest:", err)
		return 1
	}
	opt.MemProfile = *memProfile
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "tailplane-loadtest:", err)
			return 1
		}
		defer stopProfile()
	}
	res, err := run(ctx, opt)
	if res != nil {
		if asJSON {
			b, _ := json.MarshalIndent(res, "", "  ")
			fmt.Fprintf(stdout, "%s\n", b)
		} else {
			printSummary(stdout, res)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "tailplane-loadtest:", err)
		return 1
	}
	return 0
}

// prepareSelfStart finds the tailplane binary and the work directory.
func prepareSelfStart(opt *options, keep bool, stderr io.Writer) error {
	if opt.TailplaneBin == "" {
		opt.TailplaneBin = "tailplane"
		if exe, err := os.Executable(); err == nil {
			if sib := filepath.Join(filepath.Dir(exe), "tailplane"); fileExists(sib) {
				opt.TailplaneBin = sib
			}
		}
	}
	if opt.WorkDir == "" {
		d, err := os.MkdirTemp("", "tailplane-loadtest-")
		if err != nil {
			return fmt.Errorf("creating a work directory: %w", err)
		}
		opt.WorkDir = d
		if keep {
			fmt.Fprintln(stderr, "tailplane-loadtest: work directory", d)
		}
	}
	return nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// raiseFileLimit lifts the soft open-file limit to the hard one: every
// node holds a connection, and the server (inheriting the limit) one per
// node; a hard limit too low for nodes is an error that says what to do.
func raiseFileLimit(nodes int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return nil // not knowable; let the run show it
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	if need := uint64(nodes) + 512; l.Max < need {
		return fmt.Errorf("--nodes %d needs about %d open files, and the hard limit is %d (hint: raise it, e.g. `ulimit -Hn %d` as root, or `LimitNOFILE=` for a service)", nodes, need, l.Max, 2*need)
	}
	return nil
}

func printSummary(w io.Writer, r *result) {
	fmt.Fprintf(w, "tailplane load test: %d nodes, %s policy", r.Nodes, r.Policy)
	if r.Policy == policySegmented {
		fmt.Fprintf(w, " (groups of %d, %d shared services)", r.GroupSize, r.Services)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  registration:         %.3f s (every node's first full netmap after %.3f s)\n", r.RegisterS, r.FirstNetmapS)
	fmt.Fprintf(w, "  converged:            %v after %.3f s (exact peer sets: %v)\n", r.Converged, r.ConvergeS, r.PeerSetsExact)
	p := r.Propagation
	fmt.Fprintf(w, "  endpoint propagation: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d samples)\n", p.P50Ms, p.P99Ms, p.MaxMs, p.Samples)
	if r.CommitS != nil {
		fmt.Fprintf(w, "  commit to all nodes:  %.3f s\n", *r.CommitS)
	}
	if r.ReconnectS != nil {
		fmt.Fprintf(w, "  reconnect after kill -9: %.3f s\n", *r.ReconnectS)
	}
	if r.Replicas > 1 {
		fmt.Fprintf(w, "  replicas:             %d behind HAProxy; nodes per replica %v", r.Replicas, r.NodesPerReplica)
		if c := r.CrossReplica; c != nil {
			fmt.Fprintf(w, "; across replicas p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d samples)", c.P50Ms, c.P99Ms, c.MaxMs, c.Samples)
		}
		fmt.Fprintln(w)
	}
	if r.ReplicaKillS != nil {
		fmt.Fprintf(w, "  replica kill -9:      its %d nodes back and every peer set exact after %.3f s (nodes per replica %v); every peer online once its lease lapsed: %v\n", r.KilledNodes, *r.ReplicaKillS, r.NodesPerReplicaAfter, r.OnlineAfterLapse)
	}
	if r.CommitAfterKillS != nil {
		fmt.Fprintf(w, "  commit after the kill: %.3f s (applied by a surviving replica)\n", *r.CommitAfterKillS)
	}
	if r.ServerCPUS != nil {
		fmt.Fprintf(w, "  server CPU:           %.2f s", *r.ServerCPUS)
		for _, ph := range r.PhaseCPU {
			fmt.Fprintf(w, "; %s %.2f s", ph.Name, ph.CPUS)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  server peak RSS:      %.1f MB", float64(r.ServerPeakRSS)/1e6)
		if r.RestartPeakRSS > 0 {
			fmt.Fprintf(w, " (after restart: %.1f MB)", float64(r.RestartPeakRSS)/1e6)
		}
		for i, rss := range r.ReplicaPeakRSS {
			fmt.Fprintf(w, "; replica %d %.1f MB", i+1, float64(rss)/1e6)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  received by the nodes:")
	for i, ph := range r.PhaseCPU {
		sep := ";"
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(w, "%s %s %d frames, %.1f MB of JSON, %d full netmaps, %d streams ended", sep, ph.Name, ph.Frames, float64(ph.MapBytes)/1e6, ph.FullNetmaps, ph.StreamsEnded)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  load generator:       %.1f KB heap per node, peak RSS %.1f MB, CPU %.2f s", float64(r.ClientHeapNode)/1e3, float64(r.ClientPeakRSS)/1e6, r.ClientCPUS)
	for _, ph := range r.PhaseCPU {
		fmt.Fprintf(w, "; %s %.2f s", ph.Name, ph.ClientCPUS)
	}
	fmt.Fprintln(w)
}
