package schema

import (
	"context"
	"runtime"
	"sync"
	"testing"
)

// TestLoadReleasesMemory guards against keeping CUE state alive between
// loads: a long-lived cue.Context once retained ~2 MB per load of the
// realistic repository, which a server reloading on every push cannot afford.
func TestLoadReleasesMemory(t *testing.T) {
	fsys := realisticRepo()
	ctx := context.Background()
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	Load(ctx, fsys, ".")
	before := heap()
	for range 40 {
		Load(ctx, fsys, ".")
	}
	if grew := int64(heap()) - int64(before); grew > 16<<20 {
		t.Errorf("heap grew by %d MB over 40 loads", grew>>20)
	}
}

// TestLoadConcurrent runs loads in parallel; run with -race.
func TestLoadConcurrent(t *testing.T) {
	fsys := realisticRepo()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 3 {
				if tn, ds := Load(context.Background(), fsys, "."); tn == nil || len(ds) > 0 {
					t.Errorf("Load: %v", ds)
				}
				if _, ds := LoadBytes(context.Background(), "u.cue", []byte("package tailnet\nusers: \"a@b.c\": #User & {role: \"admin\"}\n")); len(ds) > 0 {
					t.Errorf("LoadBytes: %v", ds)
				}
			}
		})
	}
	wg.Wait()
}
