package reconcile

import (
	"context"
	"errors"

	"github.com/tailplane/tailplane/schema"
)

// ConfigError means the revision itself cannot be applied: retrying the
// same commit fails the same way, so the sync pipeline must wait for a new
// one.
type ConfigError struct {
	Err error
}

func (e *ConfigError) Error() string { return "reconcile: config cannot be applied: " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// NeedsNewCommit reports whether err is the config's fault (a *ConfigError,
// or schema.Diagnostics holding an error): the sync pipeline should keep
// serving the last applied state and wait for the next commit.
func NeedsNewCommit(err error) bool {
	var ce *ConfigError
	if errors.As(err, &ce) {
		return true
	}
	var ds schema.Diagnostics
	return errors.As(err, &ds) && ds.HasErrors()
}

// RetryLater reports whether err is transient (I/O, a locked or busy
// database, a full disk): the same commit may apply on a later attempt.
// Every failure that is not the config's fault counts as one (a deadline
// too), except cancellation of ctx, which means the caller is stopping.
func RetryLater(err error) bool {
	return err != nil && !NeedsNewCommit(err) && !errors.Is(err, context.Canceled)
}
