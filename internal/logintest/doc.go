// Package logintest holds the real parts interactive-login tests drive: an
// in-process OpenID provider (zitadel's certified op package) with
// password accounts set by the test, and a headless Chromium (chromedp)
// that signs in there as a person would. Packages login, control and the
// end-to-end tests share them.
package logintest
