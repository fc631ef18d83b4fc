package control

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/tailplane/tailplane/policy"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// serveRegister handles POST /machine/register over Noise.
func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	var req tailcfg.RegisterRequest
	if err := readJSON(w, r, &req); err != nil {
		http.Error(w, "tailplane: register: "+err.Error(), http.StatusBadRequest)
		return
	}
	var resp *tailcfg.RegisterResponse
	if req.Followup != "" && (req.Auth == nil || req.Auth.AuthKey == "") {
		resp = s.followup(r.Context(), machineKeyOf(r), &req)
	} else {
		resp = s.register(r.Context(), machineKeyOf(r), &req)
	}
	if resp.Error != "" {
		s.counts.refused.Add(1)
		s.logf("control: register from %s rejected: %s", machineKeyOf(r).ShortString(), resp.Error)
	}
	writeJSON(w, resp)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func rejected(format string, args ...any) *tailcfg.RegisterResponse {
	return &tailcfg.RegisterResponse{Error: "tailplane: " + fmt.Sprintf(format, args...)}
}

// register decides a RegisterRequest from the machine mkey.
func (s *Server) register(ctx context.Context, mkey key.MachinePublic, req *tailcfg.RegisterRequest) *tailcfg.RegisterResponse {
	if req.Version < MinCapabilityVersion {
		return &tailcfg.RegisterResponse{Error: tooOldMessage(req.Version)}
	}
	if req.NodeKey.IsZero() {
		return rejected("register request has no node key")
	}
	if mkey.IsZero() {
		return rejected("register request did not come over a Noise connection")
	}
	if err := checkHostinfo(req.Hostinfo); err != nil {
		return rejected("register: %v", err)
	}
	// Hash comparison happens here, off the owner goroutine.
	var keyName string
	var keyErr error
	if req.Auth != nil && req.Auth.AuthKey != "" {
		keyName, keyErr = matchAuthKey(s.tailnet.Load(), req.Auth.AuthKey)
	}
	var resp *tailcfg.RegisterResponse
	err := s.do(ctx, func(w *world) error {
		resp = w.register(ctx, mkey, req, keyName, keyErr)
		return nil
	})
	if err != nil {
		return rejected("server could not handle the request (%v); try again", err)
	}
	return resp
}

// matchAuthKey finds the declared auth key whose hash matches secret,
// comparing in constant time.
func matchAuthKey(t *schema.Tailnet, secret string) (string, error) {
	sum := sha256.Sum256([]byte(secret))
	want := []byte("sha256:" + hex.EncodeToString(sum[:]))
	found := ""
	for name, k := range t.AuthKeys {
		if subtle.ConstantTimeCompare([]byte(strings.ToLower(k.SecretHash)), want) == 1 {
			found = name
		}
	}
	if found == "" {
		return "", errors.New("the auth key is not declared in this tailnet's config (mistyped, or removed from authKeys)")
	}
	return found, nil
}

// usableAuthKey checks that the named key still exists and may register now.
func (w *world) usableAuthKey(name string, keyErr error, now time.Time) (schema.AuthKey, error) {
	if keyErr != nil {
		return schema.AuthKey{}, keyErr
	}
	if name == "" {
		return schema.AuthKey{}, errors.New("this server registers nodes with auth keys only: run `tailscale up --login-server=... --auth-key=KEY` with a key declared in the tailnet's authKeys")
	}
	k, ok := w.tailnet.AuthKeys[name]
	if !ok {
		return schema.AuthKey{}, fmt.Errorf("auth key %q was removed from the config", name)
	}
	if !k.Expires.IsZero() && now.After(k.Expires) {
		return schema.AuthKey{}, fmt.Errorf("auth key %q expired at %s; declare a new key", name, k.Expires.UTC().Format(time.RFC3339))
	}
	if k.User == "" && len(k.Tags) == 0 {
		return schema.AuthKey{}, fmt.Errorf("auth key %q names neither a user nor tags", name)
	}
	return k, nil
}

// keyUseLimit is how many registrations a key allows; 0 means unlimited.
func keyUseLimit(k schema.AuthKey) int {
	if k.Uses > 0 {
		return k.Uses
	}
	if !k.Reusable {
		return 1
	}
	return 0
}

func (w *world) register(ctx context.Context, mkey key.MachinePublic, req *tailcfg.RegisterRequest, keyName string, keyErr error) *tailcfg.RegisterResponse {
	now := w.srv.now()
	n := w.byKey[req.NodeKey]
	if n != nil && n.machine != mkey {
		return rejected("node key %s is registered by a different machine; a node key cannot move between machines", req.NodeKey.ShortString())
	}
	if !req.Expiry.IsZero() && req.Expiry.Before(now) {
		return w.logout(ctx, n)
	}
	if n == nil && !req.OldNodeKey.IsZero() {
		old := w.byKey[req.OldNodeKey]
		if old != nil && old.machine != mkey {
			return rejected("old node key %s is registered by a different machine", req.OldNodeKey.ShortString())
		}
		n = old
	}
	noAuth := req.Auth == nil || req.Auth.AuthKey == ""
	if n != nil && !n.loggedOut && !w.keyExpired(n, now) && n.nodeKey == req.NodeKey {
		// A refresh of a live node's registration.
		if !req.Expiry.IsZero() && (n.keyExpiry.IsZero() || req.Expiry.Before(n.keyExpiry)) {
			n.keyExpiry = req.Expiry.UTC()
			if err := w.saveNode(ctx, n); err != nil {
				return rejected("%v", err)
			}
			w.publishChanged(n)
		}
		return w.success(n)
	}
	if n != nil && noAuth && w.keyExpired(n, now) && (w.srv.login == nil || n.nodeKey == req.NodeKey) {
		if w.srv.login != nil { // the client makes a new key and logs in with it
			return &tailcfg.RegisterResponse{NodeKeyExpired: true}
		}
		return &tailcfg.RegisterResponse{NodeKeyExpired: true, Error: "tailplane: this node's key expired; run `tailscale up --force-reauth` to log in again (add `--auth-key=KEY` on a server without interactive login)"}
	}
	if noAuth && w.srv.login != nil {
		return w.srv.startLogin(ctx, mkey, req) // see followup for the rest
	}
	// Everything else needs an auth key, a new node key for a known node
	// too: the client only makes one when it means to log in again
	// (`tailscale up --force-reauth`, or a key it thinks expired), and
	// without a key that would re-authenticate nothing.
	k, err := w.usableAuthKey(keyName, keyErr, now)
	if err != nil {
		return rejected("%v", err)
	}
	tags, err := w.nodeTags(k, req.Hostinfo)
	if err != nil {
		return rejected("%v", err)
	}
	if n == nil {
		n = w.loggedOutNode(mkey, k, tags)
	}
	return w.authorize(ctx, n, mkey, req, k, tags, now)
}

// loggedOutNode finds a logged-out node of machine mkey with the owner a
// registration with k and tags would give, so that logging in again after a
// logout (which makes the client forget its node key) keeps the node's
// identity and addresses.
func (w *world) loggedOutNode(mkey key.MachinePublic, k schema.AuthKey, tags []string) *node {
	var best *node
	for _, n := range w.byMachine[mkey] {
		if !n.loggedOut || n.machine != mkey || !slices.Equal(n.tags, tags) {
			continue
		}
		if len(tags) == 0 && n.userLogin != k.User {
			continue
		}
		if best == nil || n.id > best.id {
			best = n
		}
	}
	return best
}

func (w *world) keyExpired(n *node, now time.Time) bool {
	return !n.keyExpiry.IsZero() && now.After(n.keyExpiry)
}

// keyExpiry is when a key registered now expires; zero means never.
func (w *world) keyExpiry(tagged bool, req *tailcfg.RegisterRequest, now time.Time) time.Time {
	var exp time.Time
	if d := w.settings.NodeKeyExpiry; d > 0 && !tagged {
		exp = now.Add(d).UTC()
	}
	if !req.Expiry.IsZero() && (exp.IsZero() || req.Expiry.Before(exp)) {
		exp = req.Expiry.UTC()
	}
	return exp
}

// logout ends n's session: ephemeral nodes are deleted, others kept (with
// their addresses) but hidden from peers until they log in again.
func (w *world) logout(ctx context.Context, n *node) *tailcfg.RegisterResponse {
	if n == nil {
		return &tailcfg.RegisterResponse{NodeKeyExpired: true}
	}
	if n.ephemeral {
		w.srv.logf("control: ephemeral node %q (%d) logged out; removing it", n.givenName, n.id)
	} else {
		w.srv.logf("control: node %q (%d) logged out", n.givenName, n.id)
	}
	if err := w.leave(ctx, n, loggingOut, "node logged out", false); err != nil {
		return rejected("%v", err)
	}
	return &tailcfg.RegisterResponse{NodeKeyExpired: true}
}

// authorize registers (or re-authorizes) a node with a validated auth key.
func (w *world) authorize(ctx context.Context, n *node, mkey key.MachinePublic, req *tailcfg.RegisterRequest, k schema.AuthKey, tags []string, now time.Time) *tailcfg.RegisterResponse {
	hi := new(tailcfg.Hostinfo)
	if req.Hostinfo != nil {
		hi = req.Hostinfo.Clone()
		hi.NetInfo = nil
	}
	isNew := n == nil
	var rec nodeRecord // saved only if the store takes it
	if isNew {
		rec = nodeRecord{stableID: newStableID(), machine: mkey, createdAt: now.UTC()}
	} else {
		rec = n.nodeRecord
	}
	rec.nodeKey = req.NodeKey
	rec.hostinfo = hi
	rec.tags = tags
	rec.userLogin = k.User
	if len(tags) > 0 {
		rec.userLogin = ""
	}
	rec.authKey = k.Name
	rec.ephemeral = k.Ephemeral || req.Ephemeral
	rec.keyExpiry = w.keyExpiry(len(tags) > 0, req, now)
	rec.loggedOut = false
	if isNew || rec.userLogin != n.userLogin || !slices.Equal(rec.tags, n.tags) {
		rec.pending = w.startsUnauthorized(k.Preauthorized)
	}
	if isNew {
		rec.givenName = w.uniqueName(hi.Hostname, nil)
		var err error
		if rec.v4, rec.v6, err = w.allocateAddrs(); err != nil {
			return rejected("%v", err)
		}
	}
	stored := rec.toStore()
	err := w.srv.store.RegisterNode(ctx, stored, k.SecretHash, keyUseLimit(k))
	if isNew && err != nil {
		if known := w.registeredElsewhere(ctx, req.NodeKey, mkey); known != nil {
			if rec.v4 != known.v4 { // the reload may have taken it for known
				w.v4.release(rec.v4)
			}
			if rec.v6 != known.v6 {
				w.v6.release(rec.v6)
			}
			return w.success(known)
		}
	}
	if isNew && errors.Is(err, store.ErrConflict) {
		stored, err = w.registerAgain(ctx, &rec, k) // another replica took the address or name; see replicas.go
	}
	if err != nil {
		if isNew {
			w.v4.release(rec.v4)
			w.v6.release(rec.v6)
		}
		return storeRefusal(k, err)
	}
	rec.id = tailcfg.NodeID(stored.ID)
	if !isNew {
		if n.sess != nil {
			n.sess.close("node re-registered")
		}
		delete(w.byKey, n.nodeKey)
		n.nodeRecord = rec
		w.byKey[n.nodeKey] = n
	} else {
		n = &node{nodeRecord: rec, offlineSince: now}
		w.addNode(n)
	}
	if isNew {
		w.srv.counts.newNodes.Add(1)
	} else {
		w.srv.counts.logins.Add(1)
	}
	if k.Name == "" {
		w.srv.logf("control: registered node %q (%d, %s) by login as %s", rec.givenName, rec.id, rec.v4, k.User)
	} else {
		w.srv.logf("control: registered node %q (%d, %s) with auth key %q", rec.givenName, rec.id, rec.v4, k.Name)
	}
	if rec.pending {
		w.srv.logf("control: node %q (%d) waits for device approval (`tailplane nodes approve %d`)", rec.givenName, rec.id, rec.id)
	}
	w.membershipChanged(n, false)
	if !isNew {
		// The policy may see no change (same owner), but peers need the
		// new node key.
		w.publishChanged(n)
	}
	return w.success(n)
}

// allocateAddrs takes a free IPv4 and IPv6 address for a new node; on an
// error it holds neither.
func (w *world) allocateAddrs() (v4, v6 netip.Addr, err error) {
	if v4, err = w.v4.allocate(); err != nil {
		return netip.Addr{}, netip.Addr{}, err
	}
	if v6, err = w.v6.allocate(); err != nil {
		w.v4.release(v4)
		return netip.Addr{}, netip.Addr{}, err
	}
	return v4, v6, nil
}

// storeRefusal is the answer to a registration with key k that the store
// refused with err: a used-up key says so, anything else as it is.
func storeRefusal(k schema.AuthKey, err error) *tailcfg.RegisterResponse {
	if errors.Is(err, store.ErrAuthKeyUsedUp) {
		if !k.Reusable && k.Uses == 0 {
			return rejected("auth key %q is one-shot and was already used; declare a new key or make it reusable", k.Name)
		}
		return rejected("auth key %q has no uses left (limit %d)", k.Name, keyUseLimit(k))
	}
	return rejected("%v", err)
}

// startsUnauthorized is the device-approval decision for a node that
// registers now, or changes owner: under tailnet.deviceApproval it waits,
// unauthorized, for an admin's approval unless it was preauthorized (by
// its auth key). Every kind of registration asks here.
func (w *world) startsUnauthorized(preauthorized bool) bool {
	return w.settings.DeviceApproval && !preauthorized
}

func (w *world) success(n *node) *tailcfg.RegisterResponse {
	resp := &tailcfg.RegisterResponse{MachineAuthorized: !n.pending}
	if n.tagged() {
		resp.User = tailcfg.User{ID: taggedUserID, DisplayName: "Tagged Devices"}
		resp.Login = tailcfg.Login{LoginName: "tagged-devices", DisplayName: "Tagged Devices"}
		return resp
	}
	up := userProfile(n.userLogin, w.tailnet.Users[n.userLogin])
	resp.User = tailcfg.User{ID: up.ID, DisplayName: up.DisplayName}
	resp.Login = tailcfg.Login{LoginName: up.LoginName, DisplayName: up.DisplayName}
	return resp
}

// nodeTags returns the tags a node registering with k gets: the key's own
// tags plus those it requested that tagOwners let the key's owner own.
func (w *world) nodeTags(k schema.AuthKey, hi *tailcfg.Hostinfo) ([]string, error) {
	tags := slices.Clone(k.Tags)
	if hi != nil {
		for _, t := range hi.RequestTags {
			if slices.Contains(tags, t) {
				continue
			}
			if err := w.mayOwnTag(k, t); err != nil {
				return nil, err
			}
			tags = append(tags, t)
		}
	}
	slices.Sort(tags)
	return slices.Compact(tags), nil
}

// mayOwnTag says why a node registering with k may not request tag, or
// nil; the policy decides (Policy.MayOwnTag), this phrases the refusal.
func (w *world) mayOwnTag(k schema.AuthKey, tag string) error {
	if !strings.HasPrefix(tag, "tag:") {
		return fmt.Errorf("advertised tag %q is not a tag (tags look like tag:name)", tag)
	}
	owners, ok := w.compiled.TagOwners(tag)
	if !ok {
		return fmt.Errorf("advertised tag %q is not declared in tagOwners", tag)
	}
	if w.compiled.MayOwnTag(policy.Node{User: k.User, Tags: k.Tags}, tag) {
		return nil
	}
	who := k.User
	if who == "" {
		who = strings.Join(k.Tags, ", ")
	}
	return fmt.Errorf("advertised tag %q may not be used by %s (auth key %q): tagOwners[%q] is %v", tag, who, k.Name, tag, owners)
}

// uniqueName turns a hostname into a MagicDNS label not used by another node.
func (w *world) uniqueName(hostname string, self *node) string {
	base := dnsLabel(hostname)
	name := base
	for i := 2; ; i++ {
		if other := w.names[name]; other == nil || other == self {
			return name
		}
		suffix := fmt.Sprintf("-%d", i)
		name = strings.TrimRight(base[:min(len(base), 63-len(suffix))], "-") + suffix
	}
}

// dnsLabel lowercases s and keeps letters, digits and inner hyphens.
func dnsLabel(s string) string {
	s, _, _ = strings.Cut(s, ".")
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '-' || r == '.' || r == '_' || r == ' ':
			b.WriteByte('-')
		}
	}
	l := strings.Trim(b.String(), "-")
	if len(l) > 63 {
		l = strings.TrimRight(l[:63], "-")
	}
	if l == "" {
		l = "node"
	}
	return l
}

func newStableID() tailcfg.StableNodeID {
	var b [8]byte
	rand.Read(b[:])
	return tailcfg.StableNodeID("n" + hex.EncodeToString(b[:]))
}
