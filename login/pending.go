package login

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tailplane/tailplane/store"
)

// Pending logins live in the store (store.PendingLogin), so that every
// replica on one database knows every login: the browser's callback, the
// admin's approval and the client's follow-up may each reach another
// replica. What the store keeps is no credential: the URL token and the
// OIDC state only as SHA-256 hashes, the nonce and PKCE verifier only in
// the browser's cookie. A Wait reads its login again when Changed says it
// changed (a completion in this process, or another replica's
// notification), and on a replicated store also every Config.Poll, so
// that a lost notification delays it, never strands it.

// StartOptions are the details of a login Start opens; the zero value is
// a login with no device description, nothing bound and no cap.
type StartOptions struct {
	// Device is what the device says it is ("laptop (linux)"), for admins.
	Device string
	// Bound is opaque to the Manager and comes back as Pending.Bound
	// (Lookup): control binds the node key the login was started for.
	Bound string
	// MaxOpen, when positive, caps the machine's open logins: starting one
	// more cancels its oldest (its URL stops working, its Wait gets
	// ErrCanceled).
	MaxOpen int
}

// hashToken is how a secret (a URL token, an OIDC state) is kept in the
// store: its SHA-256, hex. The secrets are 160-bit random, so no slow
// hash is needed.
func hashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func (m *Manager) loginURL(token string) string {
	return strings.TrimSuffix(m.cfg.BaseURL, "/") + "/login/" + token
}

// Start begins a login for machine, an opaque identity of the device that
// asked (its machine key). Only Wait with the same machine sees its result.
func (m *Manager) Start(ctx context.Context, machine string, o StartOptions) (Pending, error) {
	l := store.PendingLogin{Machine: machine, Bound: o.Bound, Device: o.Device, Group: machine}
	return m.open(ctx, l, store.LoginLimit{Max: o.MaxOpen, Replace: true})
}

// StartCheck begins a check: a login that only user (a declared login,
// the owner of the node that wants something checked) may complete, as
// for an SSH "check" rule. machine is, as for Start, the identity that
// may Wait for it: for an SSH check, the destination that holds the
// session. A person who signs in as anyone else is refused and the check
// stays open for user. Checks of one group (an SSH destination) are
// capped at maxOpen open ones, beyond which StartCheck fails with
// ErrBusy; 0 means no cap.
func (m *Manager) StartCheck(ctx context.Context, machine, user, group string, maxOpen int) (Pending, error) {
	l := store.PendingLogin{Machine: machine, User: user, Group: "check " + group}
	return m.open(ctx, l, store.LoginLimit{Max: maxOpen})
}

func (m *Manager) open(ctx context.Context, l store.PendingLogin, lim store.LoginLimit) (Pending, error) {
	now := m.now().Truncate(time.Millisecond) // as the store keeps it
	if err := m.st.PruneLogins(ctx, now.Add(-m.ttl), now); err != nil {
		return Pending{}, fmt.Errorf("login: %w", err)
	}
	for try := 0; ; try++ {
		token := randomString(20)
		l.ID = randomString(5) // 8 characters, 40 bits: for admins to type
		l.TokenHash, l.Started, l.Expires, l.State = hashToken(token), now, now.Add(m.ttl), store.LoginOpen
		canceled, err := m.st.OpenLogin(ctx, l, lim, now)
		switch {
		case errors.Is(err, store.ErrConflict) && try < 4:
			continue // an ID taken already
		case errors.Is(err, store.ErrLoginLimit):
			return Pending{}, ErrBusy
		case err != nil:
			return Pending{}, fmt.Errorf("login: starting a login: %w", err)
		}
		for _, id := range canceled {
			m.logf("login %s: canceled", id)
			m.Changed(id)
		}
		if l.User != "" {
			m.logf("login %s: started, a check for %s", l.ID, l.User)
		} else {
			m.logf("login %s: started", l.ID)
		}
		p := pendingOf(l)
		p.URL = m.loginURL(token)
		return p, nil
	}
}

func pendingOf(l store.PendingLogin) Pending {
	return Pending{ID: l.ID, Machine: l.Machine, Bound: l.Bound, Device: l.Device, Started: l.Started, Expires: l.Expires, User: l.User}
}

// Lookup returns the login whose URL is loginURL, open or ended (Wait
// tells which), or ErrUnknown: the URL is not one of this server's
// login URLs, or its login was forgotten.
func (m *Manager) Lookup(ctx context.Context, loginURL string) (Pending, error) {
	token, ok := strings.CutPrefix(loginURL, m.loginURL(""))
	if !ok || token == "" || strings.Contains(token, "/") {
		return Pending{}, ErrUnknown
	}
	l, err := m.st.LoginByToken(ctx, hashToken(token))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Pending{}, ErrUnknown
	case err != nil:
		return Pending{}, fmt.Errorf("login: %w", err)
	}
	p := pendingOf(l)
	p.URL = loginURL
	return p, nil
}

// watch is the Waits on one login in this process.
type watch struct {
	ch chan struct{} // closed by Changed
	n  int           // Waits holding ch
}

// watchLogin returns a channel Changed(id) closes, and its release.
func (m *Manager) watchLogin(id string) (<-chan struct{}, func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.watches[id]
	if w == nil {
		w = &watch{ch: make(chan struct{})}
		m.watches[id] = w
	}
	w.n++
	return w.ch, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if w.n--; w.n == 0 && m.watches[id] == w {
			delete(m.watches, id)
		}
	}
}

// Changed tells the Waits on the login id (every login for "") that it
// may have changed, so that they read it again: the replica package calls
// it for another replica's notification (store.NotifyLogin).
func (m *Manager) Changed(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for wid, w := range m.watches {
		if id == "" || wid == id {
			close(w.ch)
			delete(m.watches, wid)
		}
	}
}

// Wait blocks until the login id, started by machine, completes, expires,
// or ctx ends. A completed login is reported even if ctx has ended.
func (m *Manager) Wait(ctx context.Context, id, machine string) (Result, error) {
	for {
		changed, release := m.watchLogin(id)
		r, left, err := m.result(ctx, id, machine)
		if err != nil || left <= 0 || ctx.Err() != nil {
			release()
			if err == nil && left > 0 {
				err = ctx.Err()
			}
			return r, err
		}
		if m.poll > 0 {
			left = min(left, m.poll)
		}
		timer := time.NewTimer(left)
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		release()
	}
}

// result reads the login id for machine: its result, or how long it has
// left while it is open. It reads even after ctx ended (Wait reports a
// completion then too).
func (m *Manager) result(ctx context.Context, id, machine string) (Result, time.Duration, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	l, err := m.st.LoginByID(rctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Result{}, 0, ErrUnknown
	case err != nil:
		return Result{}, 0, fmt.Errorf("login %s: %w", id, err)
	case subtle.ConstantTimeCompare([]byte(l.Machine), []byte(machine)) != 1:
		return Result{}, 0, ErrWrongMachine
	case l.State == store.LoginDone:
		return Result{User: l.ResultUser, Via: l.ResultVia}, 0, nil
	case l.State == store.LoginCanceled:
		return Result{}, 0, ErrCanceled
	}
	left := l.Expires.Sub(m.now())
	if left <= 0 {
		return Result{}, 0, ErrExpired
	}
	return Result{}, left, nil
}

// List returns the open logins (neither ended nor expired), oldest
// first, without their URLs.
func (m *Manager) List(ctx context.Context) ([]Pending, error) {
	ls, err := m.st.OpenLogins(ctx, m.now())
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	var out []Pending
	for _, l := range ls {
		out = append(out, pendingOf(l))
	}
	return out, nil
}

// Cancel ends the open login id: its URL stops working and Wait returns
// ErrCanceled. A login that ended or is unknown is left as it is.
func (m *Manager) Cancel(ctx context.Context, id string) error {
	_, ok, err := m.st.FinishLogin(ctx, id, store.LoginCanceled, "", "", m.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("login: canceling %s: %w", id, err)
	}
	if ok {
		m.logf("login %s: canceled", id)
		m.Changed(id)
	}
	return nil
}

// Forget removes the login id once its result was used (control has
// registered the node): Lookup and Wait then answer ErrUnknown.
func (m *Manager) Forget(ctx context.Context, id string) error {
	if err := m.st.ForgetLogin(ctx, id); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	return nil
}

// Approve completes the login id as the declared user (an admin's
// decision, `tailplane logins approve ID --user LOGIN`).
func (m *Manager) Approve(ctx context.Context, id, user string) error {
	canonical, ok := m.cfg.LookupUser(ctx, user)
	if !ok {
		return fmt.Errorf("approving login %s as %s: %w (hint: add it to users and push first)", id, user, ErrUndeclared)
	}
	l, err := m.st.LoginByID(ctx, strings.ToUpper(strings.ReplaceAll(id, "-", "")))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("approving login %s: %w", id, ErrUnknown)
	case err != nil:
		return fmt.Errorf("approving login %s: %w", id, err)
	}
	p := pendingOf(l)
	if !p.allows(canonical) {
		return fmt.Errorf("approving login %s as %s: %w, %s (hint: approve it as --user %s)", id, canonical, ErrWrongUser, p.User, p.User)
	}
	if err := m.complete(ctx, l.ID, Result{User: canonical, Via: "admin"}); err != nil {
		return fmt.Errorf("approving login %s: %w", id, err)
	}
	return nil
}

// allows reports whether user (canonical) may complete p.
func (p Pending) allows(user string) bool {
	return p.User == "" || strings.EqualFold(p.User, user)
}

// complete sets the login's result once, if it is open and unexpired,
// and wakes its Waits here; the store notifies the other replicas.
func (m *Manager) complete(ctx context.Context, id string, r Result) error {
	before, ok, err := m.st.FinishLogin(ctx, id, store.LoginDone, r.User, r.Via, m.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ErrUnknown
	case err != nil:
		return err
	case !ok && before.State == store.LoginCanceled:
		return ErrCanceled
	case !ok && before.State == store.LoginDone:
		return ErrDone
	case !ok:
		return ErrExpired
	}
	m.Changed(id)
	m.logf("login %s: completed as %s via %s", id, r.User, r.Via)
	return nil
}
