package logintest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/chromedp/chromedp"
)

// Steps for tests of whole web pages (the console's): run any chromedp
// actions, read elements by CSS selector, evaluate JavaScript, and save
// named screenshots at desktop and phone width.

// Do runs steps, failing the test with the page's URL and text when one
// does not finish within a minute.
func (b *Browser) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		ctx2, cancel2 := b.step()
		defer cancel2()
		page, _ := chromedp.Run(ctx2, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
		b.t.Fatalf("browser: %s: %v; the page:\n%s", what, err, page)
	}
}

// Query returns the text of the first element the CSS selector css matches.
func (b *Browser) Query(css string) string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("browser: reading %s: %v", css, err)
	}
	return s
}

// Eval evaluates a JavaScript expression whose value is a string.
func (b *Browser) Eval(expr string) string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("browser: evaluating %s: %v", expr, err)
	}
	return s
}

// Screens saves full-page PNG screenshots of the page as
// NAME-phone.png (390 px wide, mobile) and NAME-desktop.png (1280 px),
// in $TAILPLANE_ARTIFACTS/<test name> when that is set, else in the
// test's temp dir; the first call logs where. The desktop viewport stays.
func (b *Browser) Screens(name string) {
	b.t.Helper()
	dir := b.dir
	if a := os.Getenv("TAILPLANE_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, strings.ReplaceAll(b.t.Name(), "/", "_"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.t.Fatalf("screenshots: %v", err)
		}
	}
	if b.n == 0 {
		b.t.Logf("screenshots in %s", dir)
	}
	b.n++
	for _, vp := range []struct {
		suffix string
		w, h   int64
		opts   []chromedp.EmulateViewportOption
	}{
		{"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile, chromedp.EmulatePortrait, chromedp.EmulateScale(2)}},
		{"desktop", 1280, 800, nil},
	} {
		ctx, cancel := b.step()
		err := chromedp.Do(ctx, chromedp.EmulateViewport(vp.w, vp.h, vp.opts...))
		var buf []byte
		if err == nil {
			buf, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		}
		cancel()
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%s.png", name, vp.suffix)), buf, 0o644)
		}
		if err != nil {
			b.t.Fatalf("screenshot %s (%s): %v", name, vp.suffix, err)
		}
	}
}
