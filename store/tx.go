package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrNotFound is wrapped by errors of methods that look up one row (a
// revision by ID) when there is no such row.
var ErrNotFound = errors.New("not found")

// querier is what the typed methods need from the Store's db or a Tx's
// sqlTx (a *sql.DB or *sql.Tx with its dialect), so each is written once
// for the Store and its transactions.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Tx is one write transaction, handed to the function given to Update. Its
// methods see what earlier methods of the same Tx wrote; nothing is visible
// to other connections until Update commits. A Tx must not be used after
// that function returns.
type Tx struct {
	tx sqlTx  // concrete, not a querier: writes keep their arguments off the heap
	st *Store // for the notifications a write sends (see notifyTx)
}

// Update runs fn in one write transaction and commits it when fn returns
// nil. When fn returns an error (or panics) the transaction is rolled back,
// leaving the database exactly as it was, and Update returns fn's error
// unchanged. Errors starting or committing the transaction are Update's own
// and name the database file. Write transactions take the database's write
// lock when they start, so concurrent Updates (also from other processes,
// and on PostgreSQL from other hosts) run one after the other: what fn
// reads stays as it read it until the commit.
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := s.db.begin(ctx)
	if err != nil {
		return fmt.Errorf("store: starting a transaction on %s: %w", s.Path, err)
	}
	defer sqlTx.Rollback() // no-op after Commit
	tx := &Tx{tx: sqlTx, st: s}
	if err := checkFence(ctx, tx); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: committing to %s: %w", s.Path, err)
	}
	return nil
}
