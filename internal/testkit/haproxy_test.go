package testkit

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"
)

// TestHAProxy: HAProxy sends connections to the first backend while it is
// up and to the backup once it is down.
func TestHAProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	Greet(t, first, "first")
	second := GreetOnLoopback(t, "second")
	h := StartHAProxy(t, first.Addr().String(), fmt.Sprintf("127.0.0.1:%d", second))
	read := func() (string, error) {
		return readGreeting(ctx, h.Addr, (&net.Dialer{}).DialContext)
	}
	WaitFor(t, ctx, "the first backend's greeting through HAProxy", func() (bool, string) {
		got, err := read()
		return got == "first", fmt.Sprintf("%q, %v\n%s", got, err, h.Log())
	})
	first.Close()
	WaitFor(t, ctx, "the backup's greeting once the first is down", func() (bool, string) {
		got, err := read()
		return got == "second", fmt.Sprintf("%q, %v\n%s", got, err, h.Log())
	})
}
