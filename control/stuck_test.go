package control

import (
	"context"
	"fmt"
	"net/netip"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
)

// TestStuckClientStallsNothing connects a node that never reads its map
// stream while config changes send it far more than a stream's flow-control
// window: the server keeps taking configs and the other node keeps getting
// them. Close then ends the stuck session too, and no goroutine of the
// server is left behind.
func TestStuckClientStallsNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ts := startServer(t, testTailnet(), "")
	a := newRawNode(t, ts)
	a.register(a.registerReq(aliceKey))
	stuck := newRawNode(t, ts)
	stuck.register(stuck.registerReq(aliceKey))
	sa := a.stream(ctx, a.mapReq(true))
	sa.next()
	req := stuck.mapReq(true)
	req.Compress = "" // every full netmap is ~100 KB on the wire
	stuck.stream(ctx, req)

	// 100 configs of 2000 records each: about 10 MB for the stuck node,
	// well beyond HTTP/2's default stream window (4 MB for this client).
	for i := range 100 {
		tn := testTailnet()
		for j := range 2000 {
			tn.DNS.Records = append(tn.DNS.Records, schema.DNSRecord{
				Name: fmt.Sprintf("r%d-%d.example.internal", i, j), Type: "A", Value: netip.AddrFrom4([4]byte{10, 0, byte(j >> 8), byte(j)}),
			})
		}
		if err := ts.SetConfig(ctx, tn); err != nil {
			t.Fatalf("config %d: SetConfig: %v (a stuck client must not stall the server)", i, err)
		}
		m := sa.next()
		for m.DNSConfig == nil { // the stuck node's online patch comes first
			m = sa.next()
		}
		want := fmt.Sprintf("r%d-0.example.internal", i)
		if !slices.ContainsFunc(m.DNSConfig.ExtraRecords, func(r tailcfg.DNSRecord) bool { return r.Name == want }) {
			t.Fatalf("config %d: the reading node's DNS records lack %s", i, want)
		}
	}

	// The test means something only if the stuck node's session is blocked
	// writing to it.
	for !strings.Contains(serverGoroutines(), "control.writeFrame") {
		if ctx.Err() != nil {
			t.Fatal("no session is blocked writing: the stuck client's window never filled")
		}
		time.Sleep(10 * time.Millisecond) // polling goroutine stacks; nothing to wait on
	}

	closed := make(chan struct{})
	go func() {
		ts.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close did not return with a stuck client connected")
	}
	// Every goroutine running the server's code ends after Close.
	for {
		left := serverGoroutines()
		if left == "" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("goroutines of the server left after Close:\n%s", left)
		}
		time.Sleep(10 * time.Millisecond) // polling for goroutines to exit; nothing to wait on
	}
}

// serverGoroutines returns the stacks of goroutines running a method of
// Server, or "" when there are none.
func serverGoroutines() string {
	var b strings.Builder
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	var out []string
	for g := range strings.SplitSeq(b.String(), "\n\n") {
		if strings.Contains(g, "tailplane/control.(*Server).") && !strings.Contains(g, "TestStuckClientStallsNothing") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
