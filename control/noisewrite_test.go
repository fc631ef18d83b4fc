package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"testing"
	"time"

	"github.com/tailplane/tailplane/schema"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestStalledNoiseConnectionIsClosed: a client that stops reading its whole
// Noise connection while its first (large) netmap is being written loses
// the connection after Timeouts.NoiseWrite. The client grants HTTP/2 flow
// control for everything and shrinks its socket's receive buffer, so the
// server's connection writer, not a stream, is what blocks. Every other
// timeout stays at its default, far above the test's wait.
func TestStalledNoiseConnectionIsClosed(t *testing.T) {
	tn := testTailnet()
	// About 16 MB of netmap, several times what the sockets buffer.
	for i := range 250_000 {
		tn.DNS.Records = append(tn.DNS.Records, schema.DNSRecord{
			Name: fmt.Sprintf("record-%d.tail.test", i), Type: "A", Value: netip.MustParseAddr("100.64.99.1")})
	}
	ts := startServerWith(t, tn, "", func(c *Config) { c.Timeouts = Timeouts{NoiseWrite: 500 * time.Millisecond} })
	addr := mainListener(t, ts)

	h := newRawH2(t, dialNoiseSmallBuffer(t, ts, addr))
	nk := key.NewNode().Public()
	var reg tailcfg.RegisterResponse
	h.roundTrip("/machine/register", &tailcfg.RegisterRequest{Version: tailcfg.CurrentCapabilityVersion, NodeKey: nk,
		Auth: &tailcfg.RegisterResponseAuth{AuthKey: aliceKey}, Hostinfo: &tailcfg.Hostinfo{Hostname: "stalled"}}, &reg)
	if reg.Error != "" || !reg.MachineAuthorized {
		t.Fatalf("register: %+v", reg)
	}
	// The map stream's first netmap is the large one; nothing is read any more.
	h.send("/machine/map", &tailcfg.MapRequest{Version: tailcfg.CurrentCapabilityVersion, NodeKey: nk, Stream: true})

	deadline := time.Now().Add(closeWait)
	for openNoiseConns(ts) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a Noise connection whose client stopped reading during a large netmap was still open after %s", closeWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openNoiseConns is how many Noise connections the server holds open.
func openNoiseConns(ts *testServer) int {
	ts.connMu.Lock()
	defer ts.connMu.Unlock()
	return len(ts.conns)
}

// dialNoiseSmallBuffer opens a Noise connection to the server at addr over a
// TCP socket with a small receive buffer (set before it connects, so the
// kernel does not grow it), and a fresh machine key.
func dialNoiseSmallBuffer(t *testing.T, ts *testServer, addr string) net.Conn {
	t.Helper()
	nd := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10) })
		return err
	}}
	return dialNoiseWith(t, ts, addr, nd.DialContext)
}

// rawH2 is the client side of an HTTP/2 connection written frame by frame,
// so that a test decides when it stops reading. It grants the server the
// largest flow-control windows HTTP/2 allows.
type rawH2 struct {
	t    *testing.T
	c    net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
	next uint32 // the next stream ID
}

func newRawH2(t *testing.T, c net.Conn) *rawH2 {
	t.Helper()
	h := &rawH2{t: t, c: c, fr: http2.NewFramer(c, c), next: 1}
	h.enc = hpack.NewEncoder(&h.hbuf)
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.SetDeadline(time.Now().Add(closeWait))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatalf("HTTP/2 preface: %v", err)
	}
	const maxWindow = 1<<31 - 1
	if err := h.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: maxWindow}); err != nil {
		t.Fatalf("HTTP/2 settings: %v", err)
	}
	if err := h.fr.WriteWindowUpdate(0, maxWindow-65535); err != nil {
		t.Fatalf("HTTP/2 window update: %v", err)
	}
	return h
}

// send starts a POST of body (as JSON) to path and returns its stream ID.
func (h *rawH2) send(path string, body any) uint32 {
	h.t.Helper()
	id := h.next
	h.next += 2
	h.hbuf.Reset()
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "tailplane"}, {":path", path}, {"content-type", "application/json"}} {
		h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	b, err := json.Marshal(body)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.hbuf.Bytes(), EndHeaders: true}); err != nil {
		h.t.Fatalf("POST %s: %v", path, err)
	}
	if err := h.fr.WriteData(id, true, b); err != nil {
		h.t.Fatalf("POST %s: %v", path, err)
	}
	return id
}

// roundTrip POSTs body to path and decodes the JSON answer into resp,
// answering the server's settings and pings meanwhile.
func (h *rawH2) roundTrip(path string, body, resp any) {
	h.t.Helper()
	id := h.send(path, body)
	var got []byte
	status := ""
	for done := false; !done; {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.t.Fatalf("POST %s: reading the answer: %v", path, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				h.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				h.fr.WritePing(true, f.Data)
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				status = f.PseudoValue("status")
				done = f.StreamEnded()
			}
		case *http2.DataFrame:
			if f.StreamID == id {
				got = append(got, f.Data()...)
				done = f.StreamEnded()
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			h.t.Fatalf("POST %s: the server sent %v", path, f)
		}
	}
	if status != "200" {
		h.t.Fatalf("POST %s: status %s: %s", path, status, got)
	}
	if err := json.Unmarshal(got, resp); err != nil {
		h.t.Fatalf("POST %s: answer %q: %v", path, got, err)
	}
}
