package control

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tailplane/tailplane/login"
	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// Interactive registration (Config.Login): a /machine/register without an
// auth key, for a node that needs to log in, gets a login URL
// (RegisterResponse.AuthURL) on tailplane's own server. The client then
// sends the same request again with Followup set to that URL; it is held
// until the person logs in (or the login expires), and answered with the
// node registered as the logged-in user, an error the person can act on,
// or a fresh URL. docs/login.md describes the flow.

// maxLoginsPerMachine is how many open logins one machine key may have;
// starting one more cancels its oldest. A person who runs `tailscale up`
// again gets a new URL and the old one stops working. The logins are in
// the store, so the cap holds across replicas.
const maxLoginsPerMachine = 3

// startLogin answers a registration that needs a person to log in with a
// new login URL.
func (s *Server) startLogin(ctx context.Context, mkey key.MachinePublic, req *tailcfg.RegisterRequest) *tailcfg.RegisterResponse {
	device := "a device"
	if hi := req.Hostinfo; hi != nil && hi.Hostname != "" {
		device = hi.Hostname
		if hi.OS != "" {
			device += " (" + hi.OS + ")"
		}
	}
	p, err := s.login.Start(ctx, mkey.String(), login.StartOptions{Device: device, Bound: req.NodeKey.String(), MaxOpen: maxLoginsPerMachine})
	if err != nil {
		s.logf("control: starting a login for machine %s: %v", mkey.ShortString(), err)
		return rejected("server could not start a login (%v); try again", err)
	}
	s.logf("control: login %s started for %s from machine %s", p.ID, device, mkey.ShortString())
	return &tailcfg.RegisterResponse{AuthURL: p.URL}
}

// followup answers a register request whose Followup is a login URL: it
// waits for that login, then registers the node as the logged-in user. A
// login that expired, and a URL this server does not know (answered
// already, expired long ago, or from before a restart), are answered as a
// register without Followup: a registered node's refresh, or a fresh URL.
func (s *Server) followup(ctx context.Context, mkey key.MachinePublic, req *tailcfg.RegisterRequest) *tailcfg.RegisterResponse {
	if s.login == nil {
		return rejected("%s", errLoginOff)
	}
	p, err := s.login.Lookup(ctx, req.Followup)
	switch {
	case errors.Is(err, login.ErrUnknown):
		// A repeat of a follow-up answered already (the node is
		// registered), or one this server forgot: answered as a plain
		// register, which starts a fresh login if one is needed.
		s.logf("control: login follow-up from machine %s for a login URL this server does not know (any more)", mkey.ShortString())
		return s.register(ctx, mkey, req)
	case err != nil:
		return rejected("server could not read the login (%v); try again", err)
	case p.Machine != mkey.String():
		s.logf("control: login %s: follow-up from machine %s refused: the login belongs to another machine", p.ID, mkey.ShortString())
		return rejected("this login URL was given to another device; run `tailscale up` on this device to get its own")
	case p.Bound != req.NodeKey.String():
		return rejected("this login URL was given for another node key of this device; run `tailscale up` again")
	}
	res, err := s.login.Wait(ctx, p.ID, mkey.String())
	switch {
	case err == nil:
		s.forgetLogin(ctx, p.ID)
		var resp *tailcfg.RegisterResponse
		if err := s.do(ctx, func(w *world) error {
			resp = w.registerLoggedIn(ctx, mkey, req, res)
			return nil
		}); err != nil {
			return rejected("server could not handle the request (%v); try again", err)
		}
		return resp
	case errors.Is(err, login.ErrExpired), errors.Is(err, login.ErrUnknown):
		s.forgetLogin(ctx, p.ID)
		s.logf("control: login %s expired before anyone logged in; machine %s gets a fresh URL", p.ID, mkey.ShortString())
		return s.register(ctx, mkey, req)
	case errors.Is(err, login.ErrCanceled):
		s.forgetLogin(ctx, p.ID)
		return rejected("this login was replaced by a newer one from this device; open the URL `tailscale up` printed last")
	default: // ctx ended: the client gave up, or the server is stopping
		return rejected("the login did not finish before the request ended (%v); run `tailscale up` again", err)
	}
}

// forgetLogin forgets the login id once its follow-up was answered: a
// repeat of the follow-up is then answered as a plain register.
func (s *Server) forgetLogin(ctx context.Context, id string) {
	if err := s.login.Forget(context.WithoutCancel(ctx), id); err != nil {
		s.logf("control: %v", err)
	}
}

// errLoginOff is the refusal of a follow-up when interactive login is off.
var errLoginOff = errors.New("interactive login is off on this server: run `tailscale up --login-server=... --auth-key=KEY` with a key declared in the tailnet's authKeys")

// registerLoggedIn registers the node of req as user, who just logged in
// on machine mkey. The node keeps its identity (ID, name, addresses) when
// it is one this machine had registered as the same user (or, tagged, with
// the same tags): re-login with `--force-reauth` (req.OldNodeKey), after key
// expiry (OldNodeKey too) or after a logout (a logged-out node).
func (w *world) registerLoggedIn(ctx context.Context, mkey key.MachinePublic, req *tailcfg.RegisterRequest, res login.Result) *tailcfg.RegisterResponse {
	now := w.srv.now()
	if _, ok := w.tailnet.Users[res.User]; !ok {
		w.srv.logf("control: login as %s refused: no longer declared under users", res.User)
		return rejected("%s logged in, but is no longer declared under users in the applied config; nothing was registered (an admin declares the user again, then run `tailscale up`)", res.User)
	}
	// No Name: registered by login. Not preauthorized: under
	// tailnet.deviceApproval a device that logs in waits for an admin.
	k := schema.AuthKey{User: res.User}
	tags, err := w.nodeTags(k, req.Hostinfo)
	if err != nil {
		return rejected("%v", err)
	}
	same := func(n *node) bool {
		return n.machine == mkey && slices.Equal(n.tags, tags) && (len(tags) > 0 || n.userLogin == res.User)
	}
	n := w.byKey[req.NodeKey]
	switch {
	case n != nil && n.machine != mkey:
		return rejected("node key %s is registered by a different machine; a node key cannot move between machines", req.NodeKey.ShortString())
	case n != nil && !same(n):
		return rejected("node key %s is registered as another owner's node; run `tailscale up --force-reauth` to log in with a new key", req.NodeKey.ShortString())
	}
	if old := w.byKey[req.OldNodeKey]; n == nil && !req.OldNodeKey.IsZero() && old != nil && old.machine == mkey {
		if same(old) {
			n = old
		} else if !old.loggedOut {
			// Another owner logged in on this machine: the old node's key
			// is given up, so it is logged out (and kept for its owner).
			if err := w.leave(ctx, old, loggingOut, "another user logged in on this machine", false); err != nil {
				return rejected("%v", err)
			}
		}
	}
	if n == nil {
		n = w.loggedOutNode(mkey, k, tags)
	}
	w.srv.logf("control: login %s: registering as %s (via %s)", describeDevice(req), res.User, res.Via)
	return w.authorize(ctx, n, mkey, req, k, tags, now)
}

// describeDevice names the device of a register request for the log.
func describeDevice(req *tailcfg.RegisterRequest) string {
	if req.Hostinfo != nil && req.Hostinfo.Hostname != "" {
		return fmt.Sprintf("%q", req.Hostinfo.Hostname)
	}
	return "node " + req.NodeKey.ShortString()
}
