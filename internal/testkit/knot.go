package testkit

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
	for attempt := 1; ; attempt++ {
		addr, logs, ok := startKnotOnce(t, knotd, zone, algorithm, keyName, secret)
		if ok {
			return addr
		}
		// knotd exited: most often another process took the port between
		// our probe and its bind. Try another port a few times.
		if attempt == 5 {
			t.Fatalf("knotd exited before answering, %d times; its last log:\n%s", attempt, logs)
		}
		t.Logf("knotd on %s exited (attempt %d), trying another port:\n%s", addr, attempt, logs)
	}
}

// freeDNSPort returns a loopback address whose port was free for both UDP
// and TCP a moment ago.
func freeDNSPort(t testing.TB) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err == nil {
			pc.Close()
			return addr
		}
	}
}

// startKnotOnce starts knotd on a fresh port and waits until it answers the
// SOA of zone (ok) or exits (not ok, with its log). A knotd that neither
// answers nor exits within 30 s fails the test.
func startKnotOnce(t testing.TB, knotd, zone, algorithm, keyName, secret string) (addr, logText string, ok bool) {
	dir := t.TempDir()
	addr = freeDNSPort(t)
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
	logs := new(LogBuffer)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting knotd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
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
			return addr, "", true
		}
		select {
		case <-exited:
			return addr, logs.String(), false
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("knotd on %s did not answer the SOA of %s: %v\n%s", addr, zone, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
