package testkit

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"tailscale.com/tsnet"
)

// TSNet describes a tsnet node for StartTSNet.
type TSNet struct {
	ControlURL string // the coordination server the node logs in to
	Hostname   string
	AuthKey    string
	Ephemeral  bool // the server forgets the node once it goes offline
	// NoWait starts the node without waiting for it to run: for a node
	// that cannot, such as one waiting for device approval.
	NoWait bool
}

// StartTSNet brings the node n describes up, with its state in a fresh
// temporary directory and its logs discarded, waits until it is running
// or ctx ends (unless n.NoWait), and closes it when the test ends.
func StartTSNet(t testing.TB, ctx context.Context, n TSNet) *tsnet.Server {
	t.Helper()
	s := &tsnet.Server{
		Dir:        t.TempDir(),
		Hostname:   n.Hostname,
		ControlURL: n.ControlURL,
		AuthKey:    n.AuthKey,
		Ephemeral:  n.Ephemeral,
		Logf:       func(string, ...any) {},
	}
	t.Cleanup(func() { s.Close() })
	if n.NoWait {
		if err := s.Start(); err != nil {
			t.Fatalf("node %s: Start: %v", n.Hostname, err)
		}
		return s
	}
	if _, err := s.Up(ctx); err != nil {
		t.Fatalf("node %s: Up: %v", n.Hostname, err)
	}
	return s
}

// Greet writes msg to every connection ln accepts and closes it, until
// ln is closed; it closes ln when the test ends.
func Greet(t testing.TB, ln net.Listener, msg string) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(msg))
			c.Close()
		}
	}()
}

// GreetOnLoopback listens on a free TCP port of 127.0.0.1, Greets every
// connection there with msg, and returns the port.
func GreetOnLoopback(t testing.TB, msg string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("greeter: listen: %v", err)
	}
	Greet(t, ln, msg)
	return ln.Addr().(*net.TCPAddr).Port
}

// ReadGreeting dials addr through s and returns what a Greet server there
// says, within 5 s (a denied connection is dropped silently, so a dial to
// a node that may not be reached fails only when that time is up).
func ReadGreeting(ctx context.Context, s *tsnet.Server, addr string) (string, error) {
	return readGreeting(ctx, addr, s.Dial)
}

// readGreeting dials addr with dial and reads what is said there, within
// 5 s.
func readGreeting(ctx context.Context, addr string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}
