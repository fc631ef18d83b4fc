package tailscaled

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersionFromBuildInfo(t *testing.T) {
	v, err := Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "v1.") {
		t.Errorf("tailscale.com version = %q, want v1.x from go.mod", v)
	}
}

func TestCacheDir(t *testing.T) {
	t.Setenv("TAILPLANE_CACHE_DIR", "/some/cache")
	got, err := CacheDir("v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("/some/cache", "tailscale-v1.2.3"); got != want {
		t.Errorf("with TAILPLANE_CACHE_DIR: %q, want %q", got, want)
	}

	t.Setenv("TAILPLANE_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	got, err = CacheDir("v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("/xdg", "tailplane", "tailscale-v1.2.3"); got != want {
		t.Errorf("default: %q, want %q", got, want)
	}
}

func TestBuildReusesCache(t *testing.T) {
	v, err := Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	t.Setenv("TAILPLANE_CACHE_DIR", base)
	dir, _ := CacheDir(v)
	// Stand-ins: Build must return cached files without building.
	os.MkdirAll(dir, 0o755)
	for _, name := range []string{"tailscaled", "tailscale"} {
		os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/true\n"), 0o755)
	}
	b, err := Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b.Tailscaled != filepath.Join(dir, "tailscaled") || b.Version != v {
		t.Errorf("Build = %+v, want the cached binaries in %s", b, dir)
	}
}

// TestGitopsPusherBuildsOnce: a missing gitops-pusher is built from the
// pinned module into the cache directory, and found there the next time.
func TestGitopsPusherBuildsOnce(t *testing.T) {
	v, err := Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TAILPLANE_CACHE_DIR", t.TempDir())
	dir, _ := CacheDir(v)
	bin, err := GitopsPusher(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if bin != filepath.Join(dir, "gitops-pusher") || !exists(bin) {
		t.Fatalf("GitopsPusher = %q, want a binary at %s", bin, filepath.Join(dir, "gitops-pusher"))
	}
	// A stand-in in its place must be returned as is, without a build.
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if again, err := GitopsPusher(context.Background()); err != nil || again != bin {
		t.Fatalf("second GitopsPusher = %q, %v", again, err)
	}
	if b, _ := os.ReadFile(bin); string(b) != "#!/bin/true\n" {
		t.Errorf("the cached binary was rebuilt")
	}
}
