package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/testkit"
)

// TestDeployDocThreeReplicas runs docs/deploy.md's three replicas on one
// machine with the commands the doc gives (testdata/deploy/three-replicas.sh
// reads them from the doc): its database setup on a real PostgreSQL, its
// `serve` loop, its HAProxy config on port 443, two real tailscaled nodes
// joining through HAProxy, the applying replica killed with kill -9, the
// nodes still reaching each other, and a commit applied by a survivor. It
// runs in a network and mount namespace of its own (unshare), so it needs
// root, as CI has.
func TestDeployDocThreeReplicas(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs the doc's setup in a network namespace of its own (ports 443, 5432, ...), which needs root (CI runs as root): run it as root")
	}
	for _, tool := range []string{"unshare", "ip", "openssl", "curl", "git", "su"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (Debian: util-linux, iproute2, openssl, curl, git, login): %v", tool, err)
		}
	}
	if _, err := exec.LookPath("haproxy"); err != nil {
		if _, err := os.Stat("/usr/sbin/haproxy"); err != nil {
			t.Fatalf("haproxy is not installed: %s", testkit.HAProxyInstallHint)
		}
	}
	pgbins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(pgbins) == 0 {
		t.Fatal("PostgreSQL is not installed: apt-get install postgresql (.ci/run installs it when missing)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	bin := buildTailplaneBinary(t, ctx)
	ts := testkit.TailscaledBinaries(t, "")
	tsDir := t.TempDir()
	for name, src := range map[string]string{"tailscaled": ts.Tailscaled, "tailscale": ts.Tailscale} {
		if err := os.Symlink(src, filepath.Join(tsDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	work := t.TempDir()
	for _, d := range []string{filepath.Dir(work), work} { // the postgres user's cluster lives below it
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--net", "--fork", "bash", abs(filepath.Join(repoRoot, "testdata", "deploy", "three-replicas.sh")))
	cmd.Env = append(os.Environ(),
		"DOC="+abs(filepath.Join(repoRoot, "docs", "deploy.md")), "EXAMPLE="+abs(filepath.Join(repoRoot, "examples", "basic")),
		"WORK="+work, "BIN="+filepath.Dir(bin), "TS="+tsDir, "PGBIN="+filepath.Dir(pgbins[len(pgbins)-1]))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "THREE REPLICAS OK") {
		t.Fatalf("the doc's three replicas: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
