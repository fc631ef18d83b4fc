package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// IdleTransactionTimeout is how long PostgreSQL lets a tailplane
// connection sit idle inside a transaction before it ends the session and
// rolls the transaction back (idle_in_transaction_session_timeout). Every
// write transaction holds the one write lock (see dialect), so a replica
// whose host died in the middle of one (a power cut, a network partition:
// no connection reset reaches the database) would otherwise keep every
// other replica from writing, heartbeats included, until TCP keepalives
// notice, hours later by default. tailplane's transactions never wait
// on anything but their own statements and a little Go between them, so
// this is far more than they need. A URL parameter
// idle_in_transaction_session_timeout overrides it.
const IdleTransactionTimeout = "10s"

// setSessionDefaults sets the session parameters tailplane needs on cfg
// unless the URL set them.
func setSessionDefaults(cfg *pgx.ConnConfig) {
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		cfg.RuntimeParams["idle_in_transaction_session_timeout"] = IdleTransactionTimeout
	}
}

// updateLeases is Update for the replicas' leases, without the write
// lock: a lease is renewed while another replica's write transaction
// holds the lock (a slow one, or one whose host died, until
// IdleTransactionTimeout ends it), so that replicas stay live meanwhile.
// The applier fence needs no lock against it: it is read under the lock
// when an apply starts, and two applies run one after the other anyway.
func (s *Store) updateLeases(ctx context.Context, fn func(tx *Tx) error) error {
	t, err := s.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: starting a transaction on %s: %w", s.Path, err)
	}
	defer t.Rollback() // no-op after Commit
	if err := fn(&Tx{tx: sqlTx{tx: t, d: s.db.d}, st: s}); err != nil {
		return err
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("store: committing to %s: %w", s.Path, err)
	}
	return nil
}
