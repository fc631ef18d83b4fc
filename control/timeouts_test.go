package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"tailscale.com/control/controlhttp"
	"tailscale.com/net/netmon"
	"tailscale.com/net/tsdial"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// closeWait is how long a test waits for the server to close a connection.
// It is generous, above every short timeout the tests set (and the 15 s
// ping timeout), and below the 30 s header timeout tailplane had before.
const closeWait = 25 * time.Second

// waitClosedByServer reads r (from c) until the server closes c, failing
// the test if c is still open after closeWait.
func waitClosedByServer(t *testing.T, c net.Conn, r io.Reader, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(closeWait))
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the server had not closed the connection after %s", what, closeWait)
	}
}

// mainListener serves ts on a listener of its own through HTTPServer,
// the way `tailplane serve` does, and returns its address.
func mainListener(t *testing.T, ts *testServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := ts.HTTPServer(ts.Handler())
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// dialNoise opens a Noise connection to the server at addr, with a fresh
// machine key.
func dialNoise(t *testing.T, ts *testServer, addr string) net.Conn {
	t.Helper()
	return dialNoiseWith(t, ts, addr, tsdial.NewDialer(netmon.NewStatic()).SystemDial)
}

// dialNoiseWith is dialNoise over the TCP connections dial makes.
func dialNoiseWith(t *testing.T, ts *testServer, addr string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) net.Conn {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	d := &controlhttp.Dialer{
		Hostname:        host,
		HTTPPort:        port,
		HTTPSPort:       controlhttp.NoPort,
		MachineKey:      key.NewMachine(),
		ControlKey:      ts.noiseKey.Public(),
		ProtocolVersion: uint16(tailcfg.CurrentCapabilityVersion),
		Dialer:          dial,
		Logf:            func(string, ...any) {},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := d.Dial(ctx)
	if err != nil {
		t.Fatalf("Noise dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startHTTP2 speaks the client's side of an HTTP/2 connection's start on
// c (preface and settings) and nothing else: it answers no ping.
func startHTTP2(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := http2.NewFramer(c, c).WriteSettings(); err != nil {
		t.Fatal(err)
	}
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	short := Timeouts{Header: 200 * time.Millisecond, Read: 300 * time.Millisecond, Idle: 200 * time.Millisecond, NoiseIdle: 300 * time.Millisecond}
	for _, tt := range []struct {
		name     string
		timeouts Timeouts
		run      func(t *testing.T, ts *testServer, addr string)
	}{
		{"main-silent-connection", short, func(t *testing.T, ts *testServer, addr string) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			waitClosedByServer(t, c, c, "a connection that sends no request")
		}},
		{"main-idle-keep-alive", short, func(t *testing.T, ts *testServer, addr string) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "GET /key?v=%d HTTP/1.1\r\nHost: %s\r\n\r\n", tailcfg.CurrentCapabilityVersion, addr)
			br := bufio.NewReader(c)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("GET /key: %s", res.Status)
			}
			waitClosedByServer(t, c, br, "a keep-alive connection after its request")
		}},
		{"noise-idle-without-streams", short, func(t *testing.T, ts *testServer, addr string) {
			c := dialNoise(t, ts, addr)
			startHTTP2(t, c)
			waitClosedByServer(t, c, c, "a Noise connection with no request")
		}},
		{"noise-unanswered-ping", Timeouts{NoisePing: 200 * time.Millisecond}, func(t *testing.T, ts *testServer, addr string) {
			c := dialNoise(t, ts, addr)
			startHTTP2(t, c)
			waitClosedByServer(t, c, c, "a Noise connection that answers no ping")
		}},
		{"noise-request-body-never-sent", short, func(t *testing.T, ts *testServer, addr string) {
			cc, err := (&http2.Transport{}).NewClientConn(dialNoise(t, ts, addr))
			if err != nil {
				t.Fatal(err)
			}
			body, w := io.Pipe() // never written
			defer w.Close()
			req, _ := http.NewRequest("POST", "http://"+addr+"/machine/map", body)
			done := make(chan string, 1)
			go func() {
				res, err := cc.RoundTrip(req)
				if err != nil {
					done <- err.Error()
					return
				}
				res.Body.Close()
				done <- res.Status
			}()
			select {
			case got := <-done:
				if got != "400 Bad Request" {
					t.Errorf("map request whose body never came: %s, want 400 Bad Request", got)
				}
			case <-time.After(closeWait):
				t.Fatalf("map request whose body never came: no answer after %s", closeWait)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := startServerWith(t, testTailnet(), "", func(c *Config) { c.Timeouts = tt.timeouts })
			tt.run(t, ts, mainListener(t, ts))
		})
	}

	t.Run("relay-silent-connection", func(t *testing.T) {
		t.Parallel()
		d, err := StartDERP(context.Background(), DERPConfig{Timeouts: short})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		n := d.Map.Regions[900].Nodes[0]
		c, err := net.Dial("tcp", net.JoinHostPort(n.HostName, strconv.Itoa(n.DERPPort)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		waitClosedByServer(t, c, c, "a relay connection that starts no TLS handshake")
	})
}
