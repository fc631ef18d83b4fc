package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Pending interactive logins (package login), shared by every replica on
// the database: a login started on one replica is completed on the one
// the browser's callback reaches, and read back by the one holding the
// client's follow-up.
//
//	OpenLogin(ctx, l, limit, now)       a new login; the group's oldest canceled (or ErrLoginLimit) past the limit
//	LoginByID / LoginByToken            one login, by its ID or by its URL token's hash
//	OpenLogins(ctx, now)                the open ones, oldest first
//	FinishLogin(ctx, id, state, ...)    completed or canceled, once; notifies NotifyLogin
//	ForgetLogin(ctx, id) / PruneLogins  removed
//	AddLoginFlow / TakeLoginFlow        an OIDC trip to the provider, by its state's hash, taken once
//	PassSSHCheck / SSHCheckPassed       SSH checks passed, per source node and user
//
// A login's URL token and a flow's OIDC state are never stored, only
// their hashes (the caller hashes them): someone who reads the database
// can neither open a login URL nor answer for a flow.

// NotifyLogin is the notification FinishLogin sends (body: the login's
// ID) so that a replica holding a wait on the login reads it again.
const NotifyLogin = "login"

// Login states.
const (
	LoginOpen     = "open"     // waiting for someone to log in
	LoginDone     = "done"     // completed, Result* set
	LoginCanceled = "canceled" // ended without a result (replaced by a newer login)
)

// ErrLoginLimit is OpenLogin's error when the login's group has as many
// open logins as the limit allows, and the limit does not replace.
var ErrLoginLimit = errors.New("store: the group has as many open logins as it may")

// PendingLogin is one row of pending_logins.
type PendingLogin struct {
	ID        string // the short login ID; unique
	TokenHash string // hash of the login URL's token; unique
	Machine   string // the identity that may wait for it
	Bound     string // opaque, the starter's
	Group     string // open logins of one group are capped (OpenLogin)
	Device    string
	User      string // a check's one user; empty for a login any user completes
	Started   time.Time
	Expires   time.Time
	State     string // LoginOpen, LoginDone or LoginCanceled
	// ResultUser and ResultVia are how a LoginDone login completed.
	ResultUser, ResultVia string
}

// LoginLimit caps the open (unexpired) logins of one group.
type LoginLimit struct {
	Max int // 0: no cap
	// Replace: a new login past Max cancels the group's oldest; else
	// OpenLogin fails with ErrLoginLimit.
	Replace bool
}

const loginColumns = `id, token_hash, machine, bound, cap_group, device, check_user, started_at, expires_at, state, result_user, result_via`

// OpenLogin stores l as an open login, first making room under lim among
// the open logins of l.Group unexpired at now. It returns the IDs of the
// logins it canceled for room (each notified as FinishLogin does). An ID
// or token hash taken already fails with ErrConflict: pick another.
func (s *Store) OpenLogin(ctx context.Context, l PendingLogin, lim LoginLimit, now time.Time) (canceled []string, err error) {
	if l.ID == "" || l.TokenHash == "" || l.Machine == "" {
		return nil, errors.New("store: a pending login needs its ID, token hash and machine")
	}
	err = s.Update(ctx, func(tx *Tx) error {
		canceled = nil
		if lim.Max > 0 {
			open, err := tx.openInGroup(ctx, l.Group, now)
			if err != nil {
				return err
			}
			if len(open) >= lim.Max {
				if !lim.Replace {
					return fmt.Errorf("login for %s: %w (%d)", l.Group, ErrLoginLimit, lim.Max)
				}
				for _, id := range open[:len(open)-lim.Max+1] {
					if _, err := tx.finishLogin(ctx, id, LoginCanceled, "", ""); err != nil {
						return err
					}
					canceled = append(canceled, id)
				}
			}
		}
		_, err := tx.tx.ExecContext(ctx, `INSERT INTO pending_logins (`+loginColumns+`, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '',
			(SELECT COALESCE(MAX(seq), 0) + 1 FROM pending_logins WHERE cap_group = ?))`,
			l.ID, l.TokenHash, l.Machine, l.Bound, l.Group, l.Device, l.User, l.Started.UnixMilli(), l.Expires.UnixMilli(), LoginOpen, l.Group)
		if err != nil {
			return fmt.Errorf("store: saving pending login %s: %w", l.ID, conflict(err))
		}
		return nil
	})
	return canceled, err
}

// openInGroup lists the IDs of group's logins open at now, oldest first.
func (tx *Tx) openInGroup(ctx context.Context, group string, now time.Time) ([]string, error) {
	// seq is the order the group's logins were opened in, whatever the
	// clocks of the replicas that opened them (0: before migration 0012).
	rows, err := tx.tx.QueryContext(ctx, `SELECT id FROM pending_logins WHERE cap_group = ? AND state = ? AND expires_at > ?
		ORDER BY seq, started_at, id`, group, LoginOpen, now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: reading the open logins of %s: %w", group, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: reading the open logins of %s: %w", group, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading the open logins of %s: %w", group, err)
	}
	return ids, nil
}

func scanLogin(row interface{ Scan(...any) error }) (PendingLogin, error) {
	var l PendingLogin
	var started, expires int64
	err := row.Scan(&l.ID, &l.TokenHash, &l.Machine, &l.Bound, &l.Group, &l.Device, &l.User, &started, &expires,
		&l.State, &l.ResultUser, &l.ResultVia)
	l.Started, l.Expires = time.UnixMilli(started).UTC(), time.UnixMilli(expires).UTC()
	return l, err
}

// LoginByID returns the login id; the error wraps ErrNotFound when there
// is none (it was forgotten, or never was).
func (s *Store) LoginByID(ctx context.Context, id string) (PendingLogin, error) {
	return loginWhere(ctx, s.db, "id", id)
}

// LoginByToken returns the login whose token hash is hash; the error
// wraps ErrNotFound when there is none.
func (s *Store) LoginByToken(ctx context.Context, hash string) (PendingLogin, error) {
	return loginWhere(ctx, s.db, "token_hash", hash)
}

func loginWhere(ctx context.Context, q querier, column, v string) (PendingLogin, error) {
	l, err := scanLogin(q.QueryRowContext(ctx, `SELECT `+loginColumns+` FROM pending_logins WHERE `+column+` = ?`, v))
	if errors.Is(err, sql.ErrNoRows) {
		return PendingLogin{}, fmt.Errorf("store: pending login: %w", ErrNotFound)
	}
	if err != nil {
		return PendingLogin{}, fmt.Errorf("store: reading a pending login: %w", err)
	}
	return l, nil
}

// OpenLogins returns the logins open and unexpired at now, oldest first.
func (s *Store) OpenLogins(ctx context.Context, now time.Time) ([]PendingLogin, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+loginColumns+` FROM pending_logins WHERE state = ? AND expires_at > ?
		ORDER BY started_at, seq, id`, LoginOpen, now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: listing pending logins: %w", err)
	}
	defer rows.Close()
	var out []PendingLogin
	for rows.Next() {
		l, err := scanLogin(rows)
		if err != nil {
			return nil, fmt.Errorf("store: listing pending logins: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: listing pending logins: %w", err)
	}
	return out, nil
}

// FinishLogin ends the login id in state (LoginDone with user and via, or
// LoginCanceled) if it is open and, for LoginDone, unexpired at now. It
// returns the login as it was before and whether this call ended it; a
// login that had ended or expired is left as it is. An ended login is
// notified (NotifyLogin) when the change commits.
func (s *Store) FinishLogin(ctx context.Context, id, state, user, via string, now time.Time) (PendingLogin, bool, error) {
	if state != LoginDone && state != LoginCanceled {
		return PendingLogin{}, false, fmt.Errorf("store: a login cannot end in state %q", state)
	}
	var before PendingLogin
	var changed bool
	err := s.Update(ctx, func(tx *Tx) error {
		var err error
		if before, err = loginWhere(ctx, tx.tx, "id", id); err != nil {
			return err
		}
		if before.State != LoginOpen || (state == LoginDone && !now.Before(before.Expires)) {
			return nil
		}
		changed, err = tx.finishLogin(ctx, id, state, user, via)
		return err
	})
	return before, changed, err
}

// finishLogin sets the open login id's state and result, and notifies it.
func (tx *Tx) finishLogin(ctx context.Context, id, state, user, via string) (bool, error) {
	res, err := tx.tx.ExecContext(ctx, `UPDATE pending_logins SET state = ?, result_user = ?, result_via = ? WHERE id = ? AND state = ?`,
		state, user, via, id, LoginOpen)
	if err != nil {
		return false, fmt.Errorf("store: ending login %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	return true, tx.notify(ctx, NotifyLogin, id)
}

// ForgetLogin removes the login id and its flows; none is no error.
func (s *Store) ForgetLogin(ctx context.Context, id string) error {
	return s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM login_flows WHERE login_id = ?`, id); err != nil {
			return fmt.Errorf("store: forgetting the flows of login %s: %w", id, err)
		}
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM pending_logins WHERE id = ?`, id); err != nil {
			return fmt.Errorf("store: forgetting login %s: %w", id, err)
		}
		return nil
	})
}

// PruneLogins removes the logins that expired before before, and every
// flow expired at now.
func (s *Store) PruneLogins(ctx context.Context, before, now time.Time) error {
	return s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM pending_logins WHERE expires_at < ?`, before.UnixMilli()); err != nil {
			return fmt.Errorf("store: forgetting expired logins: %w", err)
		}
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM login_flows WHERE expires_at <= ?`, now.UnixMilli()); err != nil {
			return fmt.Errorf("store: forgetting expired login flows: %w", err)
		}
		return nil
	})
}

// LoginFlow is one trip to the identity provider for a pending login.
type LoginFlow struct {
	StateHash string // hash of the OIDC state; unique
	Login     string // the pending login's ID
	Provider  string // which provider and client (opaque, the caller's)
	Expires   time.Time
}

// AddLoginFlow stores f; a state hash taken already fails with ErrConflict.
func (s *Store) AddLoginFlow(ctx context.Context, f LoginFlow) error {
	return s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.tx.ExecContext(ctx, `INSERT INTO login_flows (state_hash, login_id, provider, expires_at) VALUES (?, ?, ?, ?)`,
			f.StateHash, f.Login, f.Provider, f.Expires.UnixMilli()); err != nil {
			return fmt.Errorf("store: saving a sign-in of login %s: %w", f.Login, conflict(err))
		}
		return nil
	})
}

// TakeLoginFlow returns the flow whose state hash is hash and removes it,
// so that of two callbacks bringing one state (on any replicas) only one
// gets it; the error wraps ErrNotFound for none.
func (s *Store) TakeLoginFlow(ctx context.Context, hash string) (LoginFlow, error) {
	var f LoginFlow
	err := s.Update(ctx, func(tx *Tx) error {
		var expires int64
		err := tx.tx.QueryRowContext(ctx, `SELECT state_hash, login_id, provider, expires_at FROM login_flows WHERE state_hash = ?`, hash).
			Scan(&f.StateHash, &f.Login, &f.Provider, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: login sign-in: %w", ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: reading a login sign-in: %w", err)
		}
		f.Expires = time.UnixMilli(expires).UTC()
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM login_flows WHERE state_hash = ?`, hash); err != nil {
			return fmt.Errorf("store: taking a login sign-in: %w", err)
		}
		return nil
	})
	return f, err
}

// PassSSHCheck records that user passed an SSH check for the source node
// at at, and forgets checks passed before forget.
func (s *Store) PassSSHCheck(ctx context.Context, node int64, user string, at, forget time.Time) error {
	return s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM ssh_checks_passed WHERE passed_at < ?`, forget.UnixMilli()); err != nil {
			return fmt.Errorf("store: forgetting old SSH checks: %w", err)
		}
		if _, err := tx.tx.ExecContext(ctx, `INSERT INTO ssh_checks_passed (node_id, login, passed_at) VALUES (?, ?, ?)
			ON CONFLICT (node_id, login) DO UPDATE SET passed_at = excluded.passed_at`, node, user, at.UnixMilli()); err != nil {
			return fmt.Errorf("store: recording the SSH check of node %d by %s: %w", node, user, err)
		}
		return nil
	})
}

// SSHCheckPassed returns when user last passed an SSH check for the
// source node; false when never (or forgotten).
func (s *Store) SSHCheckPassed(ctx context.Context, node int64, user string) (time.Time, bool, error) {
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT passed_at FROM ssh_checks_passed WHERE node_id = ? AND login = ?`, node, user).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: reading the SSH check of node %d by %s: %w", node, user, err)
	}
	return time.UnixMilli(at).UTC(), true, nil
}
