package gitsync

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Credentials never reach a log line, an error or the status. Two lines of
// defence keep them out:
//
//   - Config.withDefaults refuses a repository URL carrying user info, so
//     no library or server that prints URLs can echo a token from one;
//   - everything a check reports (its error, which Status and the admin
//     API show, and its log lines) passes through the redactor of that
//     check, which knows the secrets read for it from files and the
//     environment, in the forms they are sent in. A server that echoes the
//     credentials it was sent, in an error page or a protocol message,
//     shows "[redacted]" instead.

// redacted replaces a credential in text.
const redacted = "[redacted]"

// urlUserinfo matches the user info of a URL in free text, with the
// scheme before it in group 1.
var urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s"'<>]*@`)

// redactor removes credentials from text. The zero value removes the user
// info of URLs only.
type redactor struct {
	secrets []string // literal secrets, each in every form it is sent in
}

func newRedactor(secrets ...string) redactor {
	var r redactor
	for _, s := range secrets {
		if s != "" {
			r.secrets = append(r.secrets, s)
		}
	}
	return r
}

// text returns s without the secrets and URL user info.
func (r redactor) text(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return urlUserinfo.ReplaceAllString(s, "${1}"+redacted+"@")
}

// logf formats a log line and redacts it.
func (r redactor) logf(logf func(string, ...any), format string, args ...any) {
	logf("%s", r.text(fmt.Sprintf(format, args...)))
}

// safeSentinels are the errors a redacted error still matches with
// errors.Is: their texts are fixed and hold no secret.
var safeSentinels = []error{
	transport.ErrAuthenticationRequired,
	transport.ErrAuthorizationFailed,
	transport.ErrRepositoryNotFound,
	transport.ErrEmptyRemoteRepository,
	context.DeadlineExceeded,
	context.Canceled,
	errObjects,
	errTooLarge,
	errTreeTooLarge,
}

// err returns err with its text redacted, as a *SyncError of the same
// kind and commit. The rest of err's chain is dropped, since the texts of
// the errors in it may hold a secret; the result still matches the safe
// sentinels err matched.
func (r redactor) err(err error) error {
	if err == nil {
		return nil
	}
	out := &SyncError{Kind: KindOf(err)}
	inner := err
	if se, ok := err.(*SyncError); ok {
		out.Commit, inner = se.Commit, se.Err
	}
	re := &redactedError{msg: r.text(inner.Error())}
	for _, s := range safeSentinels {
		if errors.Is(inner, s) {
			re.is = append(re.is, s)
		}
	}
	out.Err = re
	return out
}

// redactedError is an error's redacted text plus the safe sentinels it
// matched.
type redactedError struct {
	msg string
	is  []error
}

func (e *redactedError) Error() string   { return e.msg }
func (e *redactedError) Unwrap() []error { return e.is }

// userinfo reports whether the URL raw carries user info in its authority
// ("user@" or "user:password@"), and whether that includes a password.
// scp-style addresses (git@host:path) and paths carry none.
func userinfo(raw string) (user, password bool) {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return false, false
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return false, false
	}
	return true, strings.Contains(authority[:at], ":")
}

// redactURL drops any user info from the URL u, for display. It works on
// the text, so a URL that does not parse is redacted too.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	authority, path := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		authority = authority[at+1:]
	}
	return scheme + "://" + authority + path
}
