package testkit

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tailplane/tailplane/internal/pebble"
)

// StartPebble runs Let's Encrypt's Pebble ACME server (built once from the
// module cache into the test cache) with its files in dir and its DNS-01
// lookups sent to dnsServer, and stops it when the test ends; a failed
// test's log gets the tail of Pebble's log.
func StartPebble(t testing.TB, ctx context.Context, dir, dnsServer string) *pebble.Pebble {
	t.Helper()
	p, err := pebble.Start(ctx, dir, dnsServer)
	if err != nil {
		t.Fatalf("starting Pebble (built from %s in go.mod): %v", "github.com/letsencrypt/pebble/v2", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s: Pebble log (tail):\n%s", filepath.Base(dir), tail(p.Log(), 60))
		}
		p.Close()
	})
	return p
}
