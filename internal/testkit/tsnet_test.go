package testkit

import (
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// GreetOnLoopback's port answers every connection with the greeting, and
// nothing more.
func TestGreetOnLoopback(t *testing.T) {
	port := GreetOnLoopback(t, "hello\n")
	for i := range 2 {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 10*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "hello\n" {
			t.Errorf("connection %d read %q, %v; want %q and EOF", i, got, err, "hello\n")
		}
	}
}
