package testkit

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// StartKnot runs Debian's knotd on a loopback port (UDP and TCP) as the
// primary for zone (canonical, with the trailing dot), accepting dynamic
// updates signed with the TSIG key keyName (algorithm such as
// "hmac-sha256", base64 secret), and stops it when the test ends. It
// returns the server's address. Without knotd the test fails with an
// install hint.
func StartKnot(t testing.TB, zone, algorithm, keyName, secret string) string {
	t.Helper()
	knotd, err := exec.LookPath("knotd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/knotd"); err2 != nil {
			t.Fatalf("knotd not found (%v): install it with `apt-get install -y knot` (.ci/run does)", err)
		}
		knotd = "/usr/sbin/knotd"
	}
	dir := t.TempDir()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	host, port, _ := net.SplitHostPort(addr)
	zoneFile := fmt.Sprintf("$ORIGIN %s\n$TTL 60\n@ SOA ns.%s hostmaster.%s 1 3600 600 86400 60\n@ NS ns.%s\nns A 127.0.0.1\n", zone, zone, zone, zone)
	if err := os.WriteFile(filepath.Join(dir, "zone.db"), []byte(zoneFile), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`server:
    rundir: %q
    listen: %s@%s
database:
    storage: %q
log:
  - target: stderr
    any: info
key:
  - id: %s
    algorithm: %s
    secret: %s
acl:
  - id: acme
    key: %s
    action: update
zone:
  - domain: %s
    storage: %q
    file: zone.db
    acl: acme
`, dir, host, port, dir, keyName, algorithm, secret, keyName, zone, dir)
	confPath := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, knotd, "-c", confPath)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting knotd: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("knotd log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := new(dns.Msg)
		m.SetQuestion(zone, dns.TypeSOA)
		resp, _, err := (&dns.Client{Net: "tcp", Timeout: time.Second}).Exchange(m, addr)
		if err == nil && resp.Rcode == dns.RcodeSuccess && len(resp.Answer) > 0 {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("knotd on %s did not answer the SOA of %s: %v\n%s", addr, zone, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
