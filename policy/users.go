package policy

import (
	"fmt"
	"strings"

	"github.com/tailplane/tailplane/schema"
)

// checkUsers warns about user logins the policy names that the tailnet's
// `users` key does not declare: rules naming them match nothing until such
// a user joins. Tailscale accepts them, so these are warnings. A tailnet
// that declares no users at all is not checked.
func (c *compiler) checkUsers(pol *schema.Policy) {
	if len(c.t.Users) == 0 {
		return
	}
	check := func(path, s string) {
		s = strings.TrimSpace(s)
		if !strings.Contains(s, "@") || strings.Contains(s, ":") {
			return // not a login: user:*@domain, localpart:..., tags, groups
		}
		if _, ok := c.t.Users[s]; !ok {
			c.diags = append(c.diags, c.src.Warn(path, fmt.Sprintf("user %q is not declared in users", s),
				"add the user to the users key, or fix the login's spelling"))
		}
	}
	list := func(path string, ss []string) {
		for i, s := range ss {
			check(fmt.Sprintf("%s[%d]", path, i), s)
		}
	}
	dsts := func(path string, ss []string) {
		for i, s := range ss {
			if host, _, err := splitAliasPorts(s); err == nil {
				check(fmt.Sprintf("%s[%d]", path, i), host)
			}
		}
	}
	for _, name := range sortedKeys(pol.Groups) {
		list(fmt.Sprintf("groups[%q]", name), pol.Groups[name])
	}
	for _, name := range sortedKeys(pol.TagOwners) {
		list(fmt.Sprintf("tagOwners[%q]", name), pol.TagOwners[name])
	}
	for i, a := range pol.ACLs {
		list(fmt.Sprintf("acls[%d].src", i), a.Src)
		list(fmt.Sprintf("acls[%d].users", i), a.Users)
		dsts(fmt.Sprintf("acls[%d].dst", i), a.Dst)
		dsts(fmt.Sprintf("acls[%d].ports", i), a.Ports)
	}
	for i, g := range pol.Grants {
		list(fmt.Sprintf("grants[%d].src", i), g.Src)
		list(fmt.Sprintf("grants[%d].dst", i), g.Dst)
	}
	for i, r := range pol.SSH {
		list(fmt.Sprintf("ssh[%d].src", i), r.Src)
		list(fmt.Sprintf("ssh[%d].dst", i), r.Dst)
	}
	for i, na := range pol.NodeAttrs {
		list(fmt.Sprintf("nodeAttrs[%d].target", i), na.Target)
	}
	for _, k := range sortedKeys(pol.AutoApprovers.Routes) {
		list(fmt.Sprintf("autoApprovers.routes[%q]", k), pol.AutoApprovers.Routes[k])
	}
	list("autoApprovers.exitNode", pol.AutoApprovers.ExitNode)
	for i, t := range pol.Tests {
		check(fmt.Sprintf("tests[%d].src", i), t.Src)
		dsts(fmt.Sprintf("tests[%d].accept", i), t.Accept)
		dsts(fmt.Sprintf("tests[%d].deny", i), t.Deny)
	}
	for i, t := range pol.SSHTests {
		check(fmt.Sprintf("sshTests[%d].src", i), t.Src)
		list(fmt.Sprintf("sshTests[%d].dst", i), t.Dst)
	}
}
