package logintest

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

// Browser is a fresh headless Chromium (Debian's chromium package) with
// its own profile; screenshots go to the test's temp dir. Its methods
// fail the test when a step does not finish within a minute.
type Browser struct {
	t   testing.TB
	ctx context.Context
	dir string
	n   int
}

// NewBrowser starts a Browser and stops it when the test ends. Without
// chromium on PATH the test fails with an install hint.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found: %v (hint: apt-get install -y chromium; .ci/run installs it)", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// The first run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return &Browser{t: t, ctx: ctx, dir: t.TempDir()}
}

// step bounds one browser step with a generous deadline.
func (b *Browser) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, time.Minute)
}

// Open navigates to url and returns the page's heading.
func (b *Browser) Open(url string) string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("opening %s: %v", url, err)
	}
	b.Shot()
	return b.Text("h1")
}

// SignIn fills the provider's login form and returns the heading of the
// page the browser lands on.
func (b *Browser) SignIn(user, password string) string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitNotPresent(chromedp.ID("submit")))
	if err != nil {
		b.t.Fatalf("signing in as %s: %v", user, err)
	}
	b.Shot()
	return b.Text("h1")
}

// Text returns the text of the element sel ("h1" or an element id).
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	var s string
	var err error
	if sel == "h1" {
		s, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	} else {
		s, err = chromedp.Run(ctx, chromedp.Text(chromedp.ID(sel)))
	}
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

// Location is the current URL.
func (b *Browser) Location() string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		b.t.Fatalf("reading location: %v", err)
	}
	return s
}

// Shot saves a screenshot.
func (b *Browser) Shot() {
	ctx, cancel := b.step()
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(80))
	if err != nil {
		b.t.Logf("screenshot: %v", err)
		return
	}
	b.n++
	path := filepath.Join(b.dir, fmt.Sprintf("shot-%02d.jpg", b.n))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.t.Logf("screenshot: %v", err)
	}
}
