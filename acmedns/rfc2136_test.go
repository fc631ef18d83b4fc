package acmedns

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/tailplane/tailplane/internal/testkit"
)

// startKnot runs Debian's knotd on a loopback port as the primary for
// zone, accepting updates signed with key. It returns the server's address.
func startKnot(t *testing.T, zone string, key TSIGKey) string {
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
`, dir, host, port, dir, key.Name, key.Algorithm, key.Secret.Reveal(), key.Name, zone, dir)
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

func TestRFC2136Knot(t *testing.T) {
	const zone = "ts.example.test."
	secret := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	key, err := ParseTSIGKey("hmac-sha256:acme-key:" + secret)
	if err != nil {
		t.Fatal(err)
	}
	addr := startKnot(t, zone, key)
	ctx := t.Context()
	const name = "_acme-challenge.node1.ts.example.test."

	for _, zoneCfg := range []string{zone, ""} {
		t.Run("zone="+zoneCfg, func(t *testing.T) {
			p, err := NewRFC2136(RFC2136Config{Server: addr, Zone: zoneCfg, Key: key})
			if err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				op, value string
				want      []string
			}{
				{"set", "token-a", []string{"token-a"}},
				{"set", "token-b", []string{"token-a", "token-b"}},
				{"delete", "token-a", []string{"token-b"}},
				{"delete", "token-b", nil},
				{"delete", "token-b", nil},
			}
			for i, st := range steps {
				var err error
				if st.op == "set" {
					err = p.SetTXT(ctx, name, st.value)
				} else {
					err = p.DeleteTXT(ctx, name, st.value)
				}
				if err != nil {
					t.Fatalf("step %d %s %s: %v", i, st.op, st.value, err)
				}
				got := testkit.LookupTXT(t, addr, name)
				if diff := cmp.Diff(st.want, got); diff != "" {
					t.Errorf("step %d %s %s: TXT at knotd (-want +got):\n%s", i, st.op, st.value, diff)
				}
			}
		})
	}

	t.Run("wrong key", func(t *testing.T) {
		bad := key
		bad.Secret = Secret(base64.StdEncoding.EncodeToString([]byte("not the right secret, not at all")))
		p, err := NewRFC2136(RFC2136Config{Server: addr, Zone: zone, Key: bad})
		if err != nil {
			t.Fatal(err)
		}
		err = p.SetTXT(ctx, name, "token-x")
		if err == nil {
			t.Fatalf("SetTXT with a wrong key succeeded")
		}
		if strings.Contains(err.Error(), bad.Secret.Reveal()) {
			t.Errorf("error contains the secret: %v", err)
		}
		if got := testkit.LookupTXT(t, addr, name); len(got) != 0 {
			t.Errorf("TXT after a refused update = %q; want none", got)
		}
	})
}
