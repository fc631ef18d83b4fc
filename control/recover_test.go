package control

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/testkit"
)

// A panic in one operation on the owner goroutine fails that operation,
// is logged with its stack, and leaves the server serving.
func TestOwnerPanicFailsOnlyThatOperation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs testkit.LogBuffer
	ts := startServerWith(t, testTailnet(), "", func(c *Config) { c.Logf = logs.Logf })
	before := newRawNode(t, ts)
	before.register(before.registerReq(aliceKey))

	err := ts.do(ctx, func(*world) error { panic("injected failure") })
	if !errors.Is(err, errInternal) {
		t.Errorf("operation that panicked returned %v, want errInternal", err)
	}
	if strings.Contains(err.Error(), "injected failure") {
		t.Errorf("the panic value reached the caller's error: %v", err)
	}
	log := logs.String()
	for _, want := range []string{"injected failure", "goroutine ", "TestOwnerPanicFailsOnlyThatOperation"} {
		if !strings.Contains(log, want) {
			t.Errorf("server log lacks %q (the panic and its stack):\n%s", want, log)
		}
	}

	// Still serving: a new node registers and both nodes get netmaps.
	after := newRawNode(t, ts)
	if r := after.register(after.registerReq(aliceKey)); r.Error != "" || !r.MachineAuthorized {
		t.Fatalf("registration after the panic: %+v", r)
	}
	if m := after.selfMap(); m.Node == nil || len(m.Peers) != 1 || m.Peers[0].Key != before.nk.Public() {
		t.Errorf("netmap after the panic: self %v, peers %v; want one peer, the node registered before", m.Node, m.Peers)
	}
	if online, total, err := ts.NodeCounts(ctx); err != nil || total != 2 {
		t.Errorf("NodeCounts after the panic = %d, %d, %v; want 2 nodes", online, total, err)
	}
}
