package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// buildTailplane builds ./cmd/tailplane into a temporary directory.
func buildTailplane(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tailplane")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/tailplane/tailplane/cmd/tailplane")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building tailplane: %v\n%s", err, out)
	}
	return bin
}

// TestSmoke runs the whole load test (registration, convergence, endpoint
// propagation, a commit and a kill -9 restart) against a real `tailplane
// serve` with a full mesh and a segmented policy, and against three
// replicas on a real PostgreSQL behind a real HAProxy (killing one),
// through the command's --json output. It checks correctness (every phase
// completed, peer sets exact, every field present), never speed.
func TestSmoke(t *testing.T) {
	bin := buildTailplane(t)
	common := []string{"nodes", "policy", "registerSeconds", "firstNetmapSeconds", "convergeSeconds", "converged", "peerSetsExact",
		"endpointPropagation", "commitSeconds", "serverCPUSeconds", "serverPeakRSSBytes",
		"phaseCPU", "clientHeapBytesPerNode", "clientPeakRSSBytes", "clientCPUSeconds"}
	single := append([]string{"reconnectSeconds", "restartPeakRSSBytes"}, common...)
	replicas := append([]string{"replicas", "nodesPerReplica", "crossReplicaPropagation", "replicaKillRecoverySeconds",
		"killedReplicaNodes", "nodesPerReplicaAfterKill", "peersOnlineAfterLease", "commitAfterKillSeconds", "replicaPeakRSSBytes"}, common...)
	tests := []struct {
		name   string
		args   []string
		fields []string
	}{
		{"full", []string{"--nodes", "100", "--policy", "full"}, single},
		{"segmented", []string{"--nodes", "150", "--policy", "segmented", "--group-size", "50", "--services", "3"}, single},
		{"replicas", []string{"--nodes", "60", "--policy", "full", "--replicas", "3"}, replicas},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			args := append([]string{"--json", "--tailplane-bin", bin, "--work-dir", t.TempDir(),
				"--rounds", "2", "--round-gap", "1100ms", "--timeout", "2m"}, tt.args...)
			if code := runMain(ctx, args, &stdout, &stderr); code != 0 {
				t.Fatalf("tailplane-loadtest %s: exit %d\n%s\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
			}
			var fields map[string]any
			if err := json.Unmarshal(stdout.Bytes(), &fields); err != nil {
				t.Fatalf("--json output is not JSON: %v\n%s", err, stdout.String())
			}
			var missing []string
			for _, k := range tt.fields {
				if _, ok := fields[k]; !ok {
					missing = append(missing, k)
				}
			}
			if diff := cmp.Diff([]string(nil), missing); diff != "" {
				t.Errorf("--json lacks fields (-want +got):\n%s\n%s", diff, stdout.String())
			}
			var res result
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			if !res.Converged || !res.PeerSetsExact {
				t.Errorf("converged=%v peerSetsExact=%v, want both true", res.Converged, res.PeerSetsExact)
			}
			p := plan{Nodes: res.Nodes, Policy: res.Policy, GroupSize: res.GroupSize, Services: res.Services}
			wantSamples := 0
			probe := (&runner{opt: options{Plan: p}, nodes: make([]*node, p.Nodes)}).probeIndex()
			for i := range p.Nodes {
				if p.sees(i, probe) {
					wantSamples++
				}
			}
			if got, want := res.Propagation.Samples, 2*wantSamples; got != want {
				t.Errorf("endpoint propagation has %d samples, want %d (2 rounds to %d peers)", got, want, wantSamples)
			}
			if res.ServerPeakRSS <= 0 || res.ServerCPUS == nil || *res.ServerCPUS <= 0 {
				t.Errorf("server stats missing: peak RSS %d, CPU %v", res.ServerPeakRSS, res.ServerCPUS)
			}
			if res.Replicas > 0 {
				checkReplicas(t, &res)
			}
		})
	}
}

// checkReplicas: every node streamed to a replica, those of the killed
// one moved to the others, and cross-replica samples were taken.
func checkReplicas(t *testing.T, res *result) {
	t.Helper()
	sum := func(c []int) (n int) {
		for _, x := range c {
			n += x
		}
		return n
	}
	if len(res.NodesPerReplica) != 3 || sum(res.NodesPerReplica) != res.Nodes || res.NodesPerReplica[0] != res.KilledNodes {
		t.Errorf("nodes per replica %v (killed replica had %d), want all %d nodes on 3 replicas", res.NodesPerReplica, res.KilledNodes, res.Nodes)
	}
	if a := res.NodesPerReplicaAfter; len(a) != 3 || a[0] != 0 || sum(a) != res.Nodes {
		t.Errorf("nodes per replica after the kill %v, want none on the first and all %d on the others", a, res.Nodes)
	}
	if res.CrossReplica == nil || res.CrossReplica.Samples == 0 {
		t.Errorf("no cross-replica propagation samples: %+v", res.CrossReplica)
	}
}

// TestSummary: the readable summary names every figure.
func TestSummary(t *testing.T) {
	c, r := 0.5, 1.5
	var b bytes.Buffer
	printSummary(&b, &result{Nodes: 10, Policy: policySegmented, GroupSize: 5, Services: 1, Converged: true, CommitS: &c, ReconnectS: &r, ServerCPUS: &c})
	for _, want := range []string{"10 nodes, segmented policy (groups of 5, 1 shared services)", "registration:", "converged:", "endpoint propagation:", "commit to all nodes:", "reconnect after kill -9:", "server CPU:", "server peak RSS:", "load generator:"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}
