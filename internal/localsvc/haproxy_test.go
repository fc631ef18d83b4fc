package localsvc

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestStartHAProxy: a TCP proxy started from a configuration passes
// connections to its backend, and Stop removes its directory; a
// configuration HAProxy refuses is an error that carries HAProxy's words.
func TestStartHAProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello")
			c.Close()
		}
	}()
	addr, err := FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("defaults\n\tmode tcp\n\ttimeout connect 1s\n\ttimeout client 10s\n\ttimeout server 10s\n"+
		"listen front\n\tbind %s\n\tserver only %s\n", addr, backend.Addr())
	h, err := StartHAProxy(ctx, cfg, addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	c.Close()
	if string(got) != "hello" {
		t.Errorf("read %q (%v) through HAProxy, want hello\n%s", got, err, h.Log())
	}
	h.Stop()
	if _, err := os.Stat(h.dir); !os.IsNotExist(err) {
		t.Errorf("after Stop, %s: %v; want it gone", h.dir, err)
	}

	if _, err := StartHAProxy(ctx, "frontend broken\n\tno-such-keyword\n", addr); err == nil || !strings.Contains(err.Error(), "no-such-keyword") {
		t.Errorf("a refused configuration: error %v, want HAProxy's complaint about no-such-keyword", err)
	}
}
