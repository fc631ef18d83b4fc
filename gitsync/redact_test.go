package gitsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/google/go-cmp/cmp"
)

// TestURLCredentials checks which repository URLs are refused for
// carrying credentials, and that the refusal does not repeat them.
func TestURLCredentials(t *testing.T) {
	for _, tc := range []struct {
		url     string
		refused bool
		shown   string // the URL as the error and Status show it
	}{
		{"https://git.example.com/infra/tailnet.git", false, "https://git.example.com/infra/tailnet.git"},
		{"https://ghp_SECRET@git.example.com/t.git", true, "https://git.example.com/t.git"},
		{"HTTP://x-access-token:SECRET@127.0.0.1:8080/t.git", true, "HTTP://127.0.0.1:8080/t.git"},
		{"https://us%40er:SE%2FCRET@host/t.git?x=y", true, "https://host/t.git?x=y"},
		{"https://@host/t.git", true, "https://host/t.git"},
		{"ssh://git@github.com/infra/tailnet.git", false, "ssh://github.com/infra/tailnet.git"},
		{"ssh://git:SECRET@github.com/infra/tailnet.git", true, "ssh://github.com/infra/tailnet.git"},
		{"git@github.com:infra/tailnet.git", false, "git@github.com:infra/tailnet.git"},
		{"file:///srv/git/tailnet.git", false, "file:///srv/git/tailnet.git"},
		{"https://host/path/with@sign.git", false, "https://host/path/with@sign.git"},
		{"/srv/git/tailnet.git", false, "/srv/git/tailnet.git"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			if diff := cmp.Diff(tc.shown, redactURL(tc.url)); diff != "" {
				t.Errorf("redactURL (-want +got):\n%s", diff)
			}
			_, err := Config{URL: tc.url}.withDefaults()
			if tc.refused != (err != nil && strings.Contains(err.Error(), "carries credentials")) {
				t.Fatalf("withDefaults error = %v; want refused %v", err, tc.refused)
			}
			if err == nil {
				return
			}
			if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "SE%2FCRET") {
				t.Errorf("the error repeats the credentials: %v", err)
			}
			for _, hint := range []string{tc.shown, "--git-password-file", "--git-username"} {
				if !strings.Contains(err.Error(), hint) {
					t.Errorf("the error does not mention %q: %v", hint, err)
				}
			}
		})
	}
}

// TestRedactorErr checks that a redacted error keeps its kind, commit and
// safe sentinels, and loses the secrets and the rest of its chain.
func TestRedactorErr(t *testing.T) {
	const secret = "tok3n-VALUE"
	r := newRedactor(sentForms(secret)...)
	echo := fmt.Errorf("%w: server said: bad token %s for https://bot:%s@host/x", transport.ErrAuthenticationRequired, secret, secret)
	for _, tc := range []struct {
		name   string
		err    error
		kind   ErrorKind
		commit string
		text   string
		is     []error
	}{
		{"retry", retryErr("list %s: %w", "https://host/x", echo), ErrRetry, "",
			"list https://host/x: authentication required: server said: bad token [redacted] for https://[redacted]@host/x",
			[]error{transport.ErrAuthenticationRequired}},
		{"commit", commitErr("0123456789abcdef0123", fmt.Errorf("%w: %s", errTreeTooLarge, secret)), ErrNeedsCommit, "0123456789abcdef0123",
			"commit 0123456789ab refused: " + errTreeTooLarge.Error() + ": [redacted]", []error{errTreeTooLarge}},
		{"plain", fmt.Errorf("timed out after sending %s: %w", secret, context.DeadlineExceeded), ErrRetry, "",
			"timed out after sending [redacted]: context deadline exceeded", []error{context.DeadlineExceeded}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.err(tc.err)
			if diff := cmp.Diff(tc.text, got.Error()); diff != "" {
				t.Errorf("text (-want +got):\n%s", diff)
			}
			var se *SyncError
			if !errors.As(got, &se) || se.Kind != tc.kind || se.Commit != tc.commit {
				t.Errorf("got %#v; want a SyncError of kind %v for commit %q", got, tc.kind, tc.commit)
			}
			for _, s := range tc.is {
				if !errors.Is(got, s) {
					t.Errorf("errors.Is(%v) = false", s)
				}
			}
			for e := got; e != nil; e = errors.Unwrap(e) {
				if strings.Contains(e.Error(), secret) {
					t.Errorf("an error in the chain shows the secret: %v", e)
				}
			}
		})
	}
	if r.err(nil) != nil {
		t.Error("err(nil) is not nil")
	}
}

// FuzzRedactURL checks that no URL keeps its user info through redactURL
// or the redactor, and that userinfo agrees with redactURL.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{
		"https://tok@host/x", "http://u:p@h:1/x?q#f", "ssh://git@host/x", "git@host:x", "file:///p", "/p",
		"https://host/a@b", "https://a@b@c/x", "x://@", "HTTPS://T@H", `Get "https://t@h/x": dial tcp`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out := redactURL(raw)
		if user, _ := userinfo(out); user {
			t.Fatalf("redactURL(%q) = %q still has user info", raw, out)
		}
		if user, _ := userinfo(raw); !user && out != raw {
			t.Fatalf("redactURL(%q) = %q changed a URL without user info", raw, out)
		}
		text := redactor{}.text(raw)
		for _, m := range urlUserinfo.FindAllStringSubmatch(text, -1) {
			if m[0] != m[1]+redacted+"@" {
				t.Fatalf("redactor.text(%q) = %q keeps the user info %q", raw, text, m[0])
			}
		}
	})
}
