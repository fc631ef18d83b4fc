package gitsync

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSyncUnchanged measures a poll that finds the head unchanged:
// one ref listing, no fetch.
func BenchmarkSyncUnchanged(b *testing.B) {
	u := newUpstream(b)
	u.commit("first", v1, commitOpts{})
	s := newSyncer(b, Config{URL: u.fileURL(), Logf: b.Logf})
	ctx := testContext(b)
	if _, err := s.sync(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if rev, err := s.sync(ctx); rev != nil || err != nil {
			b.Fatalf("sync = %v, %v", rev, err)
		}
	}
}

// BenchmarkSnapshotTree measures copying a 200-file config tree into a
// revision's private store.
func BenchmarkSnapshotTree(b *testing.B) {
	files := map[string]string{}
	for i := range 200 {
		files[fmt.Sprintf("dir%d/file%d.hujson", i%10, i)] = fmt.Sprintf(`{"n": %d, "pad": "%0500d"}`, i, i)
	}
	src, root := buildTree(b, files)
	ctx := testContext(b)
	for b.Loop() {
		if _, err := snapshotTree(ctx, src, root, ".", time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}
