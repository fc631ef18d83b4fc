package control

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"tailscale.com/tailcfg"
)

// TestConcurrentUpdatesConverge has many connected nodes change their
// endpoints at once and checks that every node's stream converges to every
// other node's final endpoint, however the server coalesced the changes.
func TestConcurrentUpdatesConverge(t *testing.T) {
	const n = 30
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ts := startServer(t, testTailnet(), "")
	nodes := make([]*rawNode, n)
	for i := range nodes {
		nodes[i] = newRawNode(t, ts)
		req := nodes[i].registerReq(aliceKey)
		req.Hostinfo.Hostname = fmt.Sprintf("n%d", i)
		if r := nodes[i].register(req); r.Error != "" {
			t.Fatal(r.Error)
		}
	}
	// Everyone connects, then everyone moves its endpoint three times.
	streams := make([]*mapStream, n)
	ids := make([]tailcfg.NodeID, n)
	for i, nd := range nodes {
		streams[i] = nd.stream(ctx, nd.mapReq(true, fmt.Sprintf("192.0.2.%d:1", i+1)))
		ids[i] = streams[i].next().Node.ID
	}
	final := func(i int) string { return fmt.Sprintf("192.0.2.%d:4", i+1) }
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for port := 2; port <= 4; port++ {
				nd.post("/machine/map", nd.mapReq(false, fmt.Sprintf("192.0.2.%d:%d", i+1, port)))
			}
		}()
	}
	wg.Wait()

	// Each stream applies what it receives to its own picture of the peers.
	// Streams are read one after the other: the server's session
	// goroutines keep writing (HTTP/2 buffers) while one is read.
	for i, s := range streams {
		seen := map[tailcfg.NodeID]string{}
		done := func() bool {
			for j := range n {
				if j != i && seen[ids[j]] != final(j) {
					return false
				}
			}
			return true
		}
		for !done() {
			m := s.next() // fails the test when ctx ends
			for _, p := range append(m.Peers, m.PeersChanged...) {
				if len(p.Endpoints) > 0 {
					seen[p.ID] = p.Endpoints[0].String()
				}
			}
			for _, pc := range m.PeersChangedPatch {
				if len(pc.Endpoints) > 0 {
					seen[pc.NodeID] = pc.Endpoints[0].String()
				}
			}
		}
	}
}
