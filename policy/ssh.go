package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"tailscale.com/tailcfg"

	"github.com/tailplane/tailplane/schema"
)

// sshRule is one compiled entry of the `ssh` key.
type sshRule struct {
	path           string
	check          bool          // action "check": re-authenticate through the control server
	checkPeriod    time.Duration // when checkPeriodSet: 0 for "always" (or "0s"), else the period
	checkPeriodSet string        // checkPeriod as written; "" when absent (the default, 12h)
	srcs           []alias
	dsts           []alias
	users          []string // literal SSH user names and "autogroup:nonroot"
	localparts     []string // lower-case domains of "localpart:*@domain" entries
	acceptEnv      []string
	recorders      []alias // nodes that record sessions (tags)
	enforce        bool    // enforceRecorder: no recording, no session
}

// sshCheckPath is the check URL path the client calls back, with the
// placeholders tailscaled substitutes.
const sshCheckPath = "/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER"

// sshRule compiles one entry of the ssh key.
func (c *compiler) sshRule(sy *symbols, path string, r schema.SSHRule) *sshRule {
	out := &sshRule{path: path, acceptEnv: r.AcceptEnv}
	bad := false
	switch action := strings.TrimSpace(r.Action); action {
	case "accept":
	case "check":
		out.check = true
	case "":
		c.errf(path+".action", `use "accept" or "check"`, "action must be specified")
		bad = true
	default:
		c.errf(path+".action", `use "accept" or "check"`, "%q is not a valid action", r.Action)
		bad = true
	}
	if r.CheckPeriod != "" {
		d, err := parseDuration(r.CheckPeriod)
		switch {
		case err != nil:
			c.errf(path+".checkPeriod", `write a duration such as "12h" or "always"`, "%v", err)
			bad = true
		case d < 0:
			c.errf(path+".checkPeriod", "", "checkPeriod %v must be a positive duration", d)
			bad = true
		case d > MaxSSHCheckPeriod:
			c.errf(path+".checkPeriod", `at most "168h"; or "always"`, "checkPeriod %v is above the maximum of 168 hours (one week)", d)
			bad = true
		}
		out.checkPeriod = d
		out.checkPeriodSet = r.CheckPeriod
	}
	for i, s := range r.Src {
		sp := fmt.Sprintf("%s.src[%d]", path, i)
		s = strings.TrimSpace(s)
		a, err := sy.parseAlias(s)
		if err != nil {
			c.errf(sp, "", "src=%v", err)
			bad = true
			continue
		}
		if !c.checkDomain(sp, a) {
			bad = true
			continue
		}
		if a.kind == aliasPrefixes || (a.kind == aliasAutogroup && (a.name == agSelf || a.name == agInternet || a.name == agNonroot)) {
			c.errf(sp, "ssh sources are users, groups, tags or autogroups", "invalid src %q", s)
			bad = true
			continue
		}
		out.srcs = append(out.srcs, a)
	}
	for i, s := range r.Dst {
		dp := fmt.Sprintf("%s.dst[%d]", path, i)
		s = strings.TrimSpace(s)
		a, err := sy.parseAlias(s)
		if err != nil {
			c.errf(dp, "", "dst=%v", err)
			bad = true
			continue
		}
		ok := a.kind == aliasUser || a.kind == aliasTag || a.kind == aliasGroup ||
			(a.kind == aliasAutogroup && (a.name == agSelf || a.name == agMember || a.name == agTagged))
		if !ok {
			c.errf(dp, "ssh destinations are tags, users, autogroup:self, autogroup:member or autogroup:tagged", "invalid dst %q", s)
			bad = true
			continue
		}
		out.dsts = append(out.dsts, a)
	}
	c.checkSelf(path, out.srcs, out.dsts, false)
	if len(r.Users) == 0 {
		c.errf(path+".users", `list the local users, e.g. ["root", "autogroup:nonroot"]`, "users must be specified")
		bad = true
	}
	for i, u := range r.Users {
		up := fmt.Sprintf("%s.users[%d]", path, i)
		switch {
		case strings.TrimSpace(u) != u && strings.TrimSpace(u) != "":
			// Tailscale trims user names.
			c.diags = append(c.diags, c.src.Warn(up, fmt.Sprintf("ssh user %q has surrounding whitespace", u), "remove the spaces"))
			out.users = append(out.users, strings.TrimSpace(u))
		case u == "" || u == "*":
			c.errf(up, `use "autogroup:nonroot" for any non-root user`, "user %q is not valid", u)
			bad = true
		case strings.HasPrefix(u, "localpart:*@") && len(u) > len("localpart:*@"):
			domain := u[len("localpart:*@"):]
			if !c.tailnetDomain(domain) {
				c.errf(up, "use the domain of the tailnet's users", "%s is not associated with this Tailnet and cannot be used in user:*@<domain> expressions", u[len("localpart:*@"):])
				bad = true
				continue
			}
			out.localparts = append(out.localparts, domain)
		default:
			out.users = append(out.users, u)
		}
	}
	for i, rec := range r.Recorder {
		rp := fmt.Sprintf("%s.recorder[%d]", path, i)
		a, err := sy.parseAlias(strings.TrimSpace(rec))
		if err != nil || a.kind != aliasTag {
			c.errf(rp, "recorders are the tags of tsrecorder nodes", "recorder %q must be a defined tag", rec)
			bad = true
			continue
		}
		out.recorders = append(out.recorders, a)
	}
	if r.EnforceRecorder && len(r.Recorder) == 0 {
		c.errf(path+".enforceRecorder", `add "recorder": ["tag:recorder"]`, "enforceRecorder needs a recorder")
		bad = true
	}
	out.enforce = r.EnforceRecorder
	for i, e := range r.AcceptEnv {
		if e == "" {
			c.errf(fmt.Sprintf("%s.acceptEnv[%d]", path, i), "", "acceptEnv values cannot be empty")
			bad = true
		}
	}
	if bad {
		return nil
	}
	return out
}

// tailnetDomain reports whether domain belongs to the tailnet: it is the
// login domain of one of its owners.
func (c *compiler) tailnetDomain(domain string) bool {
	for login, u := range c.t.Users {
		if u.Role != schema.RoleOwner {
			continue
		}
		if _, d, ok := strings.Cut(login, "@"); ok && d == domain {
			return true
		}
	}
	return false
}

// sshPolicy computes the SSH rules of node s, or nil if none targets it.
func (r *Result) sshPolicy(s *nodeState) *tailcfg.SSHPolicy {
	var rules []*tailcfg.SSHRule
	for _, sr := range r.p.ssh {
		rules = append(rules, r.sshRulesFor(sr, s)...)
	}
	if len(rules) == 0 {
		return nil
	}
	return &tailcfg.SSHPolicy{Rules: rules}
}

func (r *Result) sshRulesFor(sr *sshRule, s *nodeState) []*tailcfg.SSHRule {
	if len(sr.users) == 0 && len(sr.localparts) == 0 {
		return nil
	}
	targeted, self := false, false
	for _, d := range sr.dsts {
		if d.kind == aliasAutogroup && d.name == agSelf {
			self = self || !s.Tagged()
			continue
		}
		if r.nodesOf(d).has(s.idx) {
			targeted = true
		}
	}
	src := newBitset(len(r.nodes))
	for _, a := range sr.srcs {
		src.or(r.nodesOf(a))
	}
	if !targeted && !self && len(sr.localparts) > 0 && src.has(s.idx) {
		// Tailscale's control plane also hands a localpart rule to each
		// source node, with the node's own user (or, for a tagged node,
		// the node itself) as the principals.
		own := newBitset(len(r.nodes))
		if s.Tagged() {
			own.set(s.idx)
		} else {
			own.orAnd(src, r.sameUser(s))
		}
		src, self = own, true
		targeted = true
	}
	if !targeted && !self {
		return nil
	}
	if !targeted {
		only := newBitset(len(r.nodes))
		only.orAnd(src, r.sameUser(s))
		src = only
	}
	if src.empty() {
		return nil
	}
	action := SSHAcceptAction()
	if sr.check {
		action = &tailcfg.SSHAction{HoldAndDelegate: r.opts.controlURL() + sshCheckPath}
	}
	if len(sr.recorders) > 0 {
		rec := newBitset(len(r.nodes))
		for _, a := range sr.recorders {
			rec.or(r.nodesOf(a))
		}
		rec.each(func(i int) {
			for _, p := range r.nodes[i].addrs {
				action.Recorders = append(action.Recorders, netip.AddrPortFrom(p.Addr(), 80))
			}
		})
		if sr.enforce {
			const msg = "session recording is required but no recorder is reachable"
			action.OnRecordingFailure = &tailcfg.SSHRecorderFailureAction{RejectSessionWithMessage: msg, TerminateSessionWithMessage: msg}
			if len(action.Recorders) == 0 {
				// tailscaled records only with recorders listed: fail closed.
				action = &tailcfg.SSHAction{Reject: true, Message: "session recording is required but no recorder node exists"}
			}
		}
	}
	users := map[string]string{}
	for _, u := range sr.users {
		if u == agNonroot {
			users["*"] = "="
			continue
		}
		users[u] = u
	}
	if _, ok := users["root"]; !ok {
		users["root"] = ""
	}
	var principals []*tailcfg.SSHPrincipal
	src.each(func(i int) {
		for _, p := range r.nodes[i].addrs {
			principals = append(principals, &tailcfg.SSHPrincipal{NodeIP: p.Addr().String()})
		}
	})
	out := []*tailcfg.SSHRule{{Principals: principals, SSHUsers: users, Action: action, AcceptEnv: slices.Clone(sr.acceptEnv)}}
	// localpart:*@domain maps each source user to the local user named
	// like their login's local part.
	if len(sr.localparts) > 0 {
		byUser := map[string][]*tailcfg.SSHPrincipal{}
		var logins []string
		src.each(func(i int) {
			n := r.nodes[i]
			_, domain, ok := strings.Cut(n.User, "@")
			if n.Tagged() || !ok || !slices.Contains(sr.localparts, domain) {
				return
			}
			if _, seen := byUser[n.User]; !seen {
				logins = append(logins, n.User)
			}
			for _, p := range n.addrs {
				byUser[n.User] = append(byUser[n.User], &tailcfg.SSHPrincipal{NodeIP: p.Addr().String()})
			}
		})
		slices.Sort(logins)
		for _, login := range logins {
			local, _, _ := strings.Cut(login, "@")
			out = append(out, &tailcfg.SSHRule{
				Principals: byUser[login],
				SSHUsers:   map[string]string{local: local},
				Action:     action,
				AcceptEnv:  slices.Clone(sr.acceptEnv),
			})
		}
	}
	return out
}

// sshCheckDiags warns about "check" rules with tagged sources (tags or
// autogroup:tagged): a check asks the source node's owner to log in again,
// and a tagged node has no owner, so the control server refuses those
// sessions with a message. Tailscale hands such rules out unchanged, and
// so does Compile; Validate (lint and apply) adds this warning.
func (p *Policy) sshCheckDiags() schema.Diagnostics {
	var diags schema.Diagnostics
	for _, sr := range p.ssh {
		if !sr.check {
			continue
		}
		for i, a := range sr.srcs {
			if a.kind == aliasTag || (a.kind == aliasAutogroup && a.name == agTagged) {
				diags = append(diags, p.src.Warn(fmt.Sprintf("%s.src[%d]", sr.path, i),
					fmt.Sprintf(`%s cannot pass an SSH "check": a tagged node has no user to log in again, so its sessions under this rule are refused`, a.String()),
					`use "accept" for tagged sources, in a rule of its own`))
			}
		}
	}
	return diags
}

// DefaultSSHCheckPeriod is how long a "check" re-authentication lasts when
// the rule sets no checkPeriod.
const DefaultSSHCheckPeriod = 12 * time.Hour

// MaxSSHCheckPeriod is the longest checkPeriod a rule may set. Tailscale's
// docs: "at least one minute and at most 168 hours (one week)"; its
// control plane enforces the maximum but accepts shorter periods (30s,
// 0s), so tailplane does the same, and a zero period checks every time
// like "always".
const MaxSSHCheckPeriod = 168 * time.Hour

// SSHAcceptAction is the action of an "accept" rule, and what a passed
// check answers: accept, with agent and port forwarding allowed.
func SSHAcceptAction() *tailcfg.SSHAction {
	return &tailcfg.SSHAction{Accept: true, AllowAgentForwarding: true, AllowLocalPortForwarding: true, AllowRemotePortForwarding: true}
}

// SSHCheckPeriod serves the control server's check callback: for a
// connection from node src to node dst as SSH user sshUser, it finds the
// first SSH rule on dst that matches (as tailscaled does) and, if that is
// a "check" rule, returns how long a successful check stays valid (0 for
// "always" or a zero checkPeriod: check every time) and true. It returns false when no rule
// matches or the matching rule is "accept".
func (r *Result) SSHCheckPeriod(src, dst tailcfg.NodeID, sshUser string) (time.Duration, bool) {
	s, d := r.state(src), r.state(dst)
	if s == nil || d == nil {
		return 0, false
	}
	for _, sr := range r.p.ssh {
		for _, rule := range r.sshRulesFor(sr, d) {
			if sshDecide(&tailcfg.SSHPolicy{Rules: []*tailcfg.SSHRule{rule}}, s.addrSet, sshUser) == "deny" {
				continue
			}
			if !sr.check {
				return 0, false
			}
			if sr.checkPeriodSet == "" {
				return DefaultSSHCheckPeriod, true
			}
			return sr.checkPeriod, true
		}
	}
	return 0, false
}
