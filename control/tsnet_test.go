package control

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/testkit"
	"golang.org/x/net/dns/dnsmessage"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/tsnet"
)

func peerNames(st *ipnstate.Status) []string {
	var names []string
	for _, p := range st.Peer {
		names = append(names, strings.TrimSuffix(p.DNSName, "."))
	}
	return names
}

func TestTSNetNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ts := startServer(t, testTailnet(), "")

	alpha := testkit.StartTSNet(t, ctx, testkit.TSNet{ControlURL: ts.URL, Hostname: "alpha", AuthKey: aliceKey})
	beta := testkit.StartTSNet(t, ctx, testkit.TSNet{ControlURL: ts.URL, Hostname: "beta", AuthKey: aliceKey})
	gamma := testkit.StartTSNet(t, ctx, testkit.TSNet{ControlURL: ts.URL, Hostname: "gamma", AuthKey: serverKey})

	// beta serves HTTP on the tailnet.
	ln, err := beta.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from beta")
	}))

	lcAlpha, err := alpha.LocalClient()
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, ctx, "alpha to see beta and gamma", func() (bool, string) {
		st, err := lcAlpha.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		names := peerNames(st)
		return len(names) == 2, fmt.Sprint(names)
	})

	t.Run("dial-by-magicdns-name", func(t *testing.T) {
		for _, from := range []*tsnet.Server{alpha, gamma} {
			c := from.HTTPClient()
			var body string
			testkit.WaitFor(t, ctx, "HTTP to beta from "+from.Hostname, func() (bool, string) {
				res, err := c.Get("http://beta.tail.test/")
				if err != nil {
					return false, err.Error()
				}
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				body = string(b)
				return true, ""
			})
			if body != "hello from beta" {
				t.Errorf("from %s: got %q, want %q", from.Hostname, body, "hello from beta")
			}
		}
	})

	t.Run("magicdns-answers", func(t *testing.T) {
		betaIP, _ := beta.TailscaleIPs()
		for _, tt := range []struct{ name, want string }{
			{"beta.tail.test.", betaIP.String()},
			{"db.tail.test.", "100.64.99.1"}, // a declared record
		} {
			msg, _, err := lcAlpha.QueryDNS(ctx, tt.name, "A")
			if err != nil {
				t.Fatalf("query %s: %v", tt.name, err)
			}
			if got := firstA(t, msg); got != tt.want {
				t.Errorf("%s A = %q, want %q", tt.name, got, tt.want)
			}
		}
	})

	t.Run("self-node", func(t *testing.T) {
		st, err := lcAlpha.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := st.Self.DNSName, "alpha.tail.test."; got != want {
			t.Errorf("self DNS name = %q, want %q", got, want)
		}
		if len(st.Self.TailscaleIPs) != 2 {
			t.Errorf("self has addresses %v, want one IPv4 and one IPv6", st.Self.TailscaleIPs)
		}
		if st.CurrentTailnet == nil || st.CurrentTailnet.MagicDNSSuffix != "tail.test" {
			t.Errorf("MagicDNS suffix = %+v, want tail.test", st.CurrentTailnet)
		}
	})

	t.Run("logout-removes-peer", func(t *testing.T) {
		lcGamma, err := gamma.LocalClient()
		if err != nil {
			t.Fatal(err)
		}
		if err := lcGamma.Logout(ctx); err != nil {
			t.Fatalf("gamma logout: %v", err)
		}
		testkit.WaitFor(t, ctx, "alpha to lose gamma", func() (bool, string) {
			st, err := lcAlpha.Status(ctx)
			if err != nil {
				return false, err.Error()
			}
			names := peerNames(st)
			return len(names) == 1 && names[0] == "beta.tail.test", fmt.Sprint(names)
		})
	})
}

// firstA returns the first A record of a DNS response.
func firstA(t *testing.T, msg []byte) string {
	var p dnsmessage.Parser
	if _, err := p.Start(msg); err != nil {
		t.Fatalf("parsing DNS response: %v", err)
	}
	p.SkipAllQuestions()
	for {
		h, err := p.AnswerHeader()
		if err != nil {
			return ""
		}
		if h.Type != dnsmessage.TypeA {
			p.SkipAnswer()
			continue
		}
		r, err := p.AResource()
		if err != nil {
			t.Fatal(err)
		}
		return netip.AddrFrom4(r.A).String()
	}
}
