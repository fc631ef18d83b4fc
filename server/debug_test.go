package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDebugListener: with DebugListen the runtime profiles are served on
// a listener of their own, not on the main one, and Close stops it.
func TestDebugListener(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	configDir(t, dir, keyA)
	srv, err := New(ctx, Config{StateDir: t.TempDir(), ConfigDir: dir, FirstApplyWait: 30 * time.Second, DebugListen: "127.0.0.1:0", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := "http://" + srv.DebugAddr().String()
	for _, tc := range []struct{ path, want string }{
		{"/debug/pprof/", "goroutine"},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile:"},
		{"/debug/pprof/heap?debug=1", "heap profile:"},
		{"/debug/pprof/cmdline", ""},
	} {
		code, body := get(t, base+tc.path, "")
		if code != http.StatusOK || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s = %d, %.100q; want 200 with %q", tc.path, code, body, tc.want)
		}
	}
	if code, _ := get(t, srv.URL()+"/debug/pprof/", ""); code == http.StatusOK {
		t.Error("the main listener serves the profiles too")
	}
	withoutDebug, err := New(ctx, Config{StateDir: t.TempDir(), ConfigDir: dir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if a := withoutDebug.DebugAddr(); a != nil {
		t.Errorf("DebugAddr without DebugListen = %v, want nil", a)
	}
	withoutDebug.Close()
	srv.Close()
	if _, err := http.Get(base + "/debug/pprof/"); err == nil {
		t.Error("the debug listener answers after Close")
	}
}
