package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tailplane/tailplane/login"
	"github.com/tailplane/tailplane/policy"
	"tailscale.com/tailcfg"
)

// SSH check mode. A "check" rule hands the destination node
// holdAndDelegate on /machine/ssh/action/{src}/to/{dst}?local_user=U (see
// package policy). tailscaled fetches it over its Noise session while it
// holds the SSH connection, shows the Message of each answer to the SSH
// client, follows a further holdAndDelegate, and stops at accept or
// reject. The first answer here either accepts (a check of the source's
// owner passed within the rule's checkPeriod), rejects, or starts a check
// (login.StartCheck, which only the source node's owner may complete) and
// delegates to /machine/ssh/action/{src}/to/{dst}/check/{id}, a long poll
// that accepts once the owner has logged in.

// Messages shown in the SSH client. tailscaled prints them as SSH auth
// banners.
const (
	sshCheckLoginOff = "tailscale: this SSH rule needs a check (logging in again), " +
		"and interactive login is off on this tailplane server; ask the tailnet's admin to turn it on, or to use action \"accept\"\n"
	sshCheckTagged = "tailscale: this SSH rule needs a check, and the connection comes from a tagged node, " +
		"which has no user to log in again; ask the tailnet's admin for an \"accept\" rule for its tags\n"
	sshCheckNoRule = "tailscale: the tailnet policy no longer asks for a check on this connection; connect again\n"
	sshCheckNoSrc  = "tailscale: the node this SSH connection comes from is not logged in to the tailnet\n"
	sshCheckBadURL = "tailscale: the SSH check callback URL is malformed; ask the tailnet's admin to check the server log\n"
	sshCheckOver   = "tailscale: the check was not completed in time; connect again for a new link\n"
	sshCheckBusy   = "tailscale: too many SSH checks are waiting on this node; complete one, or connect again in a few minutes\n"
	sshCheckFailed = "tailscale: the tailplane server could not start the check; connect again, or ask the tailnet's admin to check the server log\n"
)

// maxOpenSSHChecks is how many checks one destination may have waiting
// at once: each holds a pending login until it completes or expires.
const maxOpenSSHChecks = 16

// Passed checks are kept in the store, per source node and the user who
// passed it, so that every replica (and a restarted server) honours them
// for the checkPeriod of the rule that asks next.

// checkPassed reports whether user passed a check for src less than
// period before now; a zero period ("always") never counts an earlier
// check. A store error counts as no check (the person logs in again).
func (s *Server) checkPassed(ctx context.Context, src tailcfg.NodeID, user string, period time.Duration) bool {
	if period <= 0 {
		return false
	}
	at, ok, err := s.store.SSHCheckPassed(ctx, int64(src), user)
	if err != nil {
		s.logf("control: ssh check: %v", err)
	}
	return ok && s.now().Sub(at) < period
}

// rememberCheck records that user passed a check for src now,
// forgetting checks older than any checkPeriod may reach.
func (s *Server) rememberCheck(ctx context.Context, src tailcfg.NodeID, user string) {
	now := s.now()
	if err := s.store.PassSSHCheck(ctx, int64(src), user, now, now.Add(-policy.MaxSSHCheckPeriod)); err != nil {
		s.logf("control: ssh check: %v (the next session is checked again)", err)
	}
}

// sshParties is what the check callback knows of a connection's nodes.
type sshParties struct {
	src, dst           tailcfg.NodeID
	srcName, dstName   string
	srcLogin           string // the source's owner; empty when tagged
	srcTagged, srcGone bool   // srcGone: unknown or logged out
	localUser          string
}

// errNotYourNode refuses a callback for a destination the Noise peer does
// not own.
var errNotYourNode = errors.New("this Noise session's machine key does not own the destination node in the URL")

// sshPartiesOf reads the nodes of the callback r names. Only the
// destination's own Noise session may ask (errNotYourNode otherwise); a
// malformed URL yields ok false.
func (s *Server) sshPartiesOf(r *http.Request) (p sshParties, ok bool, err error) {
	src, err1 := strconv.ParseInt(r.PathValue("src"), 10, 64)
	dst, err2 := strconv.ParseInt(r.PathValue("dst"), 10, 64)
	if err1 != nil || err2 != nil {
		return p, false, nil
	}
	p.src, p.dst = tailcfg.NodeID(src), tailcfg.NodeID(dst)
	p.localUser = r.URL.Query().Get("local_user")
	mkey := machineKeyOf(r)
	err = s.do(r.Context(), func(w *world) error {
		d := w.nodes[p.dst]
		if d == nil || d.loggedOut || d.machine != mkey || mkey.IsZero() {
			return errNotYourNode
		}
		p.dstName = d.givenName
		n := w.nodes[p.src]
		if n == nil || n.loggedOut {
			p.srcGone = true
			return nil
		}
		p.srcName, p.srcLogin, p.srcTagged = n.givenName, n.userLogin, n.tagged()
		return nil
	})
	return p, true, err
}

// writeSSHAction answers a callback with a.
func writeSSHAction(w http.ResponseWriter, a *tailcfg.SSHAction) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(a)
}

func sshReject(msg string) *tailcfg.SSHAction { return &tailcfg.SSHAction{Reject: true, Message: msg} }

// refuseSSHCallback answers a callback that sshPartiesOf failed.
func (s *Server) refuseSSHCallback(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errNotYourNode) {
		s.logf("control: ssh check: refused %s from machine %s: %v", r.URL.Path, machineKeyOf(r).ShortString(), err)
		http.Error(w, "ssh check: "+err.Error(), http.StatusForbidden)
		return
	}
	http.Error(w, "ssh check: "+err.Error(), http.StatusServiceUnavailable)
}

// serveSSHActionMalformed answers a callback URL that names no node pair,
// with a rejection: any error status makes tailscaled retry for half an
// hour while the user's ssh hangs.
func (s *Server) serveSSHActionMalformed(w http.ResponseWriter, r *http.Request) {
	s.logf("control: ssh check: malformed callback %s", r.URL.Path)
	writeSSHAction(w, sshReject(sshCheckBadURL))
}

// serveSSHAction answers the first callback of a check (GET
// /machine/ssh/action/{src}/to/{dst}?local_user=U): accept when the
// source's owner passed a check within the rule's checkPeriod, reject
// what cannot be checked, else start a check and delegate to its long poll.
func (s *Server) serveSSHAction(w http.ResponseWriter, r *http.Request) {
	p, ok, err := s.sshPartiesOf(r)
	switch {
	case !ok:
		s.serveSSHActionMalformed(w, r)
		return
	case err != nil:
		s.refuseSSHCallback(w, r, err)
		return
	}
	what := fmt.Sprintf("%s (node %d) -> %s (node %d) as %q", p.srcName, p.src, p.dstName, p.dst, p.localUser)
	period, refusal := s.sshCheckPeriod(p)
	if refusal != "" {
		s.logf("control: ssh check: %s: rejected: %s", what, strings.TrimSpace(refusal))
		writeSSHAction(w, sshReject(refusal))
		return
	}
	if s.checkPassed(r.Context(), p.src, p.srcLogin, period) {
		s.logf("control: ssh check: %s: accepted, %s passed a check within %v", what, p.srcLogin, period)
		writeSSHAction(w, policy.SSHAcceptAction())
		return
	}
	pend, err := s.login.StartCheck(r.Context(), checkWaiter(r, p), p.srcLogin, machineKeyOf(r).String(), maxOpenSSHChecks)
	switch {
	case errors.Is(err, login.ErrBusy):
		s.logf("control: ssh check: %s: rejected: %d checks wait on %s already", what, maxOpenSSHChecks, p.dstName)
		writeSSHAction(w, sshReject(sshCheckBusy))
		return
	case err != nil:
		s.logf("control: ssh check: %s: %v", what, err)
		writeSSHAction(w, sshReject(sshCheckFailed))
		return
	}
	s.logf("control: ssh check: %s: asked %s to log in again (login %s)", what, p.srcLogin, pend.ID)
	base := s.serverURL
	if base == "" {
		base = "https://unused" // tailscaled sends it over Noise, whatever the host
	}
	next := fmt.Sprintf("%s/machine/ssh/action/%d/to/%d/check/%s?local_user=%s",
		strings.TrimSuffix(base, "/"), p.src, p.dst, pend.ID, url.QueryEscape(p.localUser))
	writeSSHAction(w, &tailcfg.SSHAction{
		Message: fmt.Sprintf("# tailplane: this SSH connection needs a check.\n"+
			"# Log in as %s to allow it, at:\n#   %s\n", p.srcLogin, pend.URL),
		HoldAndDelegate: next,
	})
}

// checkWaiter is the identity a check is bound to (login's machine): the
// destination's machine key and the connection's nodes, so only the
// destination may wait for it, and only for the connection it began for.
func checkWaiter(r *http.Request, p sshParties) string {
	return fmt.Sprintf("%s ssh %d->%d", machineKeyOf(r), p.src, p.dst)
}

// sshCheckPeriod is the checkPeriod of the check rule that applies to p,
// or the message that rejects p.
func (s *Server) sshCheckPeriod(p sshParties) (time.Duration, string) {
	switch {
	case s.login == nil:
		return 0, sshCheckLoginOff
	case p.srcGone:
		return 0, sshCheckNoSrc
	case p.srcTagged:
		return 0, sshCheckTagged
	}
	period, ok := s.published.policyRes.Load().SSHCheckPeriod(p.src, p.dst, p.localUser)
	if !ok {
		return 0, sshCheckNoRule
	}
	return period, ""
}

// serveSSHCheck is the long poll of a check (GET
// /machine/ssh/action/{src}/to/{dst}/check/{id}): it waits for the login,
// then accepts if the source node's owner completed it. A broken poll is
// fetched again by tailscaled.
func (s *Server) serveSSHCheck(w http.ResponseWriter, r *http.Request) {
	p, ok, err := s.sshPartiesOf(r)
	switch {
	case !ok || s.login == nil:
		s.serveSSHActionMalformed(w, r)
		return
	case err != nil:
		s.refuseSSHCallback(w, r, err)
		return
	}
	id := r.PathValue("id")
	res, err := s.login.Wait(r.Context(), id, checkWaiter(r, p))
	switch {
	case errors.Is(err, login.ErrWrongMachine):
		s.refuseSSHCallback(w, r, errNotYourNode)
		return
	case r.Context().Err() != nil:
		return // the poll broke; tailscaled asks again
	}
	switch {
	case err != nil:
		s.logf("control: ssh check: login %s: %v", id, err)
		writeSSHAction(w, sshReject(sshCheckOver))
		return
	}
	// The source may have changed owners, or left, while the check ran.
	if p2, _, err := s.sshPartiesOf(r); err != nil || p2.srcGone || p2.srcTagged || !strings.EqualFold(p2.srcLogin, res.User) {
		s.logf("control: ssh check: login %s: completed as %s, who no longer owns node %d", id, res.User, p.src)
		writeSSHAction(w, sshReject(sshCheckNoSrc))
		return
	}
	s.rememberCheck(r.Context(), p.src, p.srcLogin)
	s.logf("control: ssh check: %s (node %d) -> %s (node %d): %s passed the check (login %s)", p.srcName, p.src, p.dstName, p.dst, res.User, id)
	a := policy.SSHAcceptAction()
	a.Message = "# tailplane: check passed as " + res.User + ".\n"
	writeSSHAction(w, a)
}
