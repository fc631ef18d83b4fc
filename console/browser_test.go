package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser is a fresh headless Chromium (Debian's chromium package) with
// its own profile. Screenshots go to $TAILPLANE_ARTIFACTS/<test> when set,
// else to the test's temp dir; either way the log says where.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found: %v (hint: apt-get install -y chromium; .ci/run installs it)", err)
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")))
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil { // starts the browser: no timeout
		t.Fatalf("starting chromium: %v", err)
	}
	dir := t.TempDir()
	if a := os.Getenv("TAILPLANE_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", dir)
	return &browser{t: t, ctx: ctx, dir: dir}
}

// do runs steps with a generous deadline.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		ctx2, cancel2 := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel2()
		page, _ := chromedp.Run(ctx2, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
		b.t.Fatalf("browser: %s: %v; the page:\n%s", what, err, page)
	}
}

// text returns the text of the element sel matches (a CSS selector).
func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("browser: reading %s: %v", sel, err)
	}
	return s
}

// eval evaluates a JavaScript expression into a string.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("browser: evaluating %s: %v", expr, err)
	}
	return s
}

// shot saves a full-page screenshot as name-{desktop,phone}.png (PNG), at the desktop width and
// at a phone's; the desktop viewport stays.
func (b *browser) shot(name string) {
	b.t.Helper()
	for _, vp := range []struct {
		suffix string
		w, h   int64
		opts   []chromedp.EmulateViewportOption
	}{
		{"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile, chromedp.EmulatePortrait, chromedp.EmulateScale(2)}},
		{"desktop", 1280, 800, nil},
	} {
		ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(vp.w, vp.h, vp.opts...)); err != nil {
			cancel()
			b.t.Fatalf("browser: viewport %s: %v", vp.suffix, err)
		}
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			b.t.Fatalf("browser: screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(b.dir, fmt.Sprintf("%s-%s.png", name, vp.suffix)), buf, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
}
