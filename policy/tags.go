package policy

import (
	"slices"

	"github.com/tailplane/tailplane/schema"
)

// TagOwners returns the owners tagOwners lists for tag, as written, and
// whether it declares tag at all: a tag declared with an empty list is
// owned by no one, but nodes may keep it.
func (p *Policy) TagOwners(tag string) (owners []string, declared bool) {
	owners, declared = p.sy.tagOwners[tag]
	return owners, declared
}

// MayOwnTag reports whether owner may apply tag to a node: tag is declared
// in tagOwners and one of its owners stands for owner, judged as
// autoApprovers judge a node (see ApproveRoutes). owner is who applies the
// tag: a user (User, no Tags), whom a login, a group of the user or
// autogroup:member, admin or owner stand for, or tags (Tags), which a tag
// among them stands for. Only owner's User and Tags are read.
func (p *Policy) MayOwnTag(owner Node, tag string) bool {
	return slices.ContainsFunc(p.tagOwners[tag], func(a alias) bool { return p.owns(a, owner) })
}

// inRoleGroup reports whether u is in ag, autogroup:admin or
// autogroup:owner: the tailnet's owners are in both, its admins in
// autogroup:admin only. It is the one place where roles meet autogroups.
func inRoleGroup(u schema.User, ag string) bool {
	return u.Role == schema.RoleOwner || ag == agAdmin && u.Role == schema.RoleAdmin
}
