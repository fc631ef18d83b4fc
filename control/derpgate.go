package control

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"

	"tailscale.com/derp"
	"tailscale.com/types/key"
)

// Relay admission. derpserver can verify clients only through a local
// tailscaled or an HTTP admission URL, and cannot drop one client's
// connections. So the relay checks clients itself, in process: the first
// frame a DERP client sends (FrameClientInfo) starts with its node key in
// the clear. The relay reads that key before derpserver does and refuses
// the connection unless the attached Server admits the key; derpserver
// then verifies, as always, that the client holds the key's private half
// (the rest of the frame is sealed with it). Admitted connections are
// kept by key, so a node that loses admission loses them too.

// setAdmission attaches the relay to a Server's admission check.
func (d *DERP) setAdmission(check func(key.NodePublic) error) {
	d.admit.Store(&check)
}

// gate wraps derpserver's handler so that the connection it hijacks reads
// through admission.
func (d *DERP) gate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&gatedWriter{ResponseWriter: w, d: d}, r)
	})
}

// gatedWriter hands derpserver a hijacked connection whose reads pass the
// admission check first.
type gatedWriter struct {
	http.ResponseWriter
	d *DERP
}

func (g *gatedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(g.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	c := &relayConn{Conn: nc, d: g.d}
	r := &admitReader{br: brw.Reader, c: c}
	return c, bufio.NewReadWriter(bufio.NewReader(r), brw.Writer), nil
}

// admitReader passes reads through once the client's key is admitted.
type admitReader struct {
	br  *bufio.Reader
	c   *relayConn
	err error // the refusal; every read fails with it
	ok  bool
}

func (r *admitReader) Read(p []byte) (int, error) {
	if !r.ok {
		if r.err == nil {
			r.err = r.admit()
		}
		if r.err != nil {
			return 0, r.err
		}
		r.ok = true
	}
	return r.br.Read(p)
}

// admit peeks at the client's first frame and admits its key. The reads
// fall under derpserver's handshake deadline.
func (r *admitReader) admit() error {
	hdr, err := r.br.Peek(derp.FrameHeaderLen + derp.KeyLen)
	if err != nil {
		return err
	}
	if derp.FrameType(hdr[0]) != derp.FrameClientInfo {
		return fmt.Errorf("relay client sent frame type %#x first, not its client info", hdr[0])
	}
	var k key.NodePublic
	if err := k.ReadRawWithoutAllocating(bufio.NewReaderSize(bytes.NewReader(hdr[derp.FrameHeaderLen:]), derp.KeyLen)); err != nil {
		return err
	}
	err = r.c.d.admitConn(k, r.c)
	if err != nil && r.c.d.srv.HasMeshKey() {
		if mesh, merr := r.c.d.admitMeshPeer(r.br, k); merr != nil {
			return merr
		} else if mesh {
			return nil // another relay of the region (derpmesh.go)
		}
	}
	return err
}

// errNoServer refuses clients of a relay no Server is attached to.
var errNoServer = errors.New("the relay is not attached to a coordination server")

// admitConn checks k and, if admitted, records c as one of k's
// connections. Checking and recording happen under connMu, so a
// revocation (which takes connMu after it dropped the key) either finds c
// or made the check fail.
func (d *DERP) admitConn(k key.NodePublic, c *relayConn) error {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	err := errNoServer
	if check := d.admit.Load(); check != nil {
		err = (*check)(k)
	}
	if err != nil {
		return fmt.Errorf("relay refuses node key %s: %w", k.ShortString(), err)
	}
	if c.closed {
		return net.ErrClosed
	}
	c.key, c.admitted = k, true
	if d.conns[k] == nil {
		d.conns[k] = map[*relayConn]struct{}{}
	}
	d.conns[k][c] = struct{}{}
	return nil
}

// disconnect closes every relay connection of k; the Server calls it when
// k loses admission.
func (d *DERP) disconnect(k key.NodePublic) {
	d.connMu.Lock()
	cs := d.conns[k]
	delete(d.conns, k)
	for c := range cs {
		c.closed = true
	}
	d.connMu.Unlock()
	if len(cs) > 0 {
		d.logf("derp: closing %d relay connection(s) of node key %s: it is no longer admitted", len(cs), k.ShortString())
	}
	for c := range cs {
		// Not on the caller's goroutine (the Server's owner): closing a
		// TLS connection may wait for its close alert to be written.
		go c.Conn.Close()
	}
}

// relayConn is a relay client's connection, known by key once admitted.
type relayConn struct {
	net.Conn
	d *DERP
	// Guarded by d.connMu.
	key      key.NodePublic
	admitted bool
	closed   bool
}

func (c *relayConn) Close() error {
	d := c.d
	d.connMu.Lock()
	c.closed = true
	if c.admitted {
		if cs := d.conns[c.key]; cs != nil {
			delete(cs, c)
			if len(cs) == 0 {
				delete(d.conns, c.key)
			}
		}
	}
	d.connMu.Unlock()
	return c.Conn.Close()
}
