package control

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkLiveHeap reports the live heap per node of a full-mesh tailnet
// whose every node holds a live session and its computed policy view (as
// after every node connected), measured after a GC. Run it with
// -benchtime 1x; each iteration builds a fresh world.
func BenchmarkLiveHeap(b *testing.B) {
	for _, n := range []int{1_000, 2_000, 5_000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			var perNode float64
			for range b.N {
				before := liveHeap()
				w := benchWorld(b, n)
				res := w.srv.policyRes.Load()
				for id := range w.live {
					res.Node(id) // what each session computes before its first netmap
				}
				for _, nd := range w.nodes {
					if _, err := w.srv.views.encoded(nd.view); err != nil {
						b.Fatal(err)
					}
				}
				perNode = float64(liveHeap()-before) / float64(n)
				runtime.KeepAlive(w)
			}
			b.ReportMetric(perNode, "heap-B/node")
		})
	}
}

func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
