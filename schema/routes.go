package schema

import (
	"fmt"
	"slices"
	"strings"
)

// RouteKey is one key of the `routes` key, split at its last '/': an owner
// alone ("tag:router", "alice@example.com") approves the routes for every
// node of that owner; an owner and a node name ("tag:router/office-router")
// approves them only for the node with that MagicDNS name and that owner.
//
// A node's host name is chosen by its client, so a name alone never
// approves anything: any member could register a node under it.
type RouteKey struct {
	Owner string // "tag:NAME" (nodes carrying the tag) or a user login (that user's untagged nodes)
	Node  string // the node's MagicDNS name (its given name); "" means every node of Owner
}

// ParseRouteKey splits a `routes` key. ok is false for a key that
// approves nothing: a bare node name (the old form), an owner that is
// neither "tag:..." nor a login, or a '/' with nothing on one side. The
// loader reports those as errors; ParseRouteKey only classifies.
func ParseRouteKey(key string) (k RouteKey, ok bool) {
	k.Owner = key
	named := false
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		k.Owner, k.Node, named = key[:i], key[i+1:], true
	}
	if named && k.Node == "" {
		return k, false
	}
	return k, isTagOwner(k.Owner) || isUserOwner(k.Owner)
}

// String returns the key as written in the config.
func (k RouteKey) String() string {
	if k.Node == "" {
		return k.Owner
	}
	return k.Owner + "/" + k.Node
}

// Approves reports whether an approval under k applies to the node with
// the MagicDNS name name, owned by user unless it carries tags. A tag owner
// needs the node to carry the tag; a user owner needs the node to be that
// user's and untagged (tagged nodes belong to their tags). It agrees with
// RouteKeysFor.
func (k RouteKey) Approves(name, user string, tags []string) bool {
	if k.Node != "" && (name == "" || k.Node != name) {
		return false
	}
	switch {
	case isTagOwner(k.Owner):
		return slices.Contains(tags, k.Owner)
	case isUserOwner(k.Owner):
		return len(tags) == 0 && user == k.Owner
	}
	return false
}

// RouteKeysFor returns the `routes` keys whose approvals apply to the node
// with the MagicDNS name name, owned by user unless it carries tags: for
// each tag "tag:x" and "tag:x/NAME", for an untagged node "USER" and
// "USER/NAME". Looking these up in Tailnet.Routes finds exactly the keys
// RouteKey.Approves accepts, in as many map lookups as the node has tags.
func RouteKeysFor(name, user string, tags []string) []string {
	var owners []string
	if len(tags) > 0 {
		for _, t := range tags {
			if isTagOwner(t) {
				owners = append(owners, t)
			}
		}
	} else if isUserOwner(user) {
		owners = []string{user}
	}
	keys := make([]string, 0, 2*len(owners))
	for _, o := range owners {
		keys = append(keys, o)
		if name != "" {
			keys = append(keys, o+"/"+name)
		}
	}
	return keys
}

func isTagOwner(s string) bool {
	return len(s) > len("tag:") && strings.HasPrefix(s, "tag:") && !strings.ContainsRune(s, '/')
}

func isUserOwner(s string) bool {
	if strings.HasPrefix(s, "tag:") {
		return false
	}
	i := strings.IndexByte(s, '@')
	return i > 0 && i < len(s)-1 && !strings.ContainsAny(s, "/ \t\n")
}

// routeKey checks one key of `routes` (see RouteKey). authKeys is the
// document's raw `authKeys` value (or nil), which names the likely owner
// of a bare node name in the hint.
func (d *decoder) routeKey(t *Tailnet, key, path string, authKeys *node) {
	owner, name, named := key, "", false
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		owner, name, named = key[:i], key[i+1:], true
	}
	switch {
	case strings.HasPrefix(owner, "tag:"):
		d.checkTag(t, owner, strings.TrimPrefix(owner, "tag:"), path)
	case strings.Contains(owner, "@"):
		d.routeUser(t, owner, path)
	case !named && !strings.Contains(key, ":"):
		d.errorf(path, bareRouteHint(t, key, authKeys),
			"a bare node name can be claimed by any member who picks that host name, so %q approves no node", key)
		return
	case owner == "":
		d.errorf(path, fmt.Sprintf(`write the owner before the '/': %q or %q`, "tag:router/"+name, "alice@example.com/"+name),
			"route key %q has no owner", key)
	default:
		d.errorf(path, `key routes by "tag:NAME", a login from users, or either followed by "/" and a node name; groups and autogroups approve routes through autoApprovers`,
			"route owner %q is neither a tag nor a user login", owner)
	}
	if named {
		d.routeNodeName(owner, name, path)
	}
}

// routeUser checks a user owner of a `routes` key.
func (d *decoder) routeUser(t *Tailnet, login, path string) {
	if _, ok := t.Users[login]; ok {
		return
	}
	if !isUserOwner(login) {
		d.errorf(path, `write a login such as "alice@example.com"`, "route owner %q is not a login of the form name@domain", login)
		return
	}
	for declared := range t.Users {
		if strings.EqualFold(declared, login) {
			d.errorf(path, fmt.Sprintf("write %q, as users declares it", declared), "user %q is not in users", login)
			return
		}
	}
	d.errorf(path, fmt.Sprintf(`add %q to users, or key the approval by a tag`, login), "user %q is not in users", login)
}

// routeNodeName checks the node name part of an "OWNER/NODE" key: it must
// be a MagicDNS name as tailplane assigns them (lowercase letters, digits
// and inner hyphens), or it could never match.
func (d *decoder) routeNodeName(owner, name, path string) {
	if name == "" {
		d.errorf(path, fmt.Sprintf("write %q to approve every node of %s, or add the node's MagicDNS name after the '/'", owner, owner),
			"route key %q has an empty node name", owner+"/")
		return
	}
	if first, _, dotted := strings.Cut(name, "."); dotted && checkDNSLabel(first) == "" {
		d.errorf(path, fmt.Sprintf("write %q: a node name is the first label of its MagicDNS name", owner+"/"+magicDNSLabel(first)),
			"node name %q is a full domain name", name)
		return
	}
	if msg := checkDNSLabel(name); msg != "" {
		d.errorf(path, `write the node's MagicDNS name (one DNS label, as "tailscale status" shows it) after the '/'`,
			"invalid node name %q: %s", name, msg)
		return
	}
	if fixed := magicDNSLabel(name); fixed != name {
		d.errorf(path, fmt.Sprintf("write %q", owner+"/"+fixed),
			"node name %q never matches: MagicDNS names are lowercase letters, digits and '-'", name)
	}
}

// magicDNSLabel spells a valid DNS label as tailplane's MagicDNS names
// are: lowercase, with '-' for '_'.
func magicDNSLabel(label string) string {
	return strings.ReplaceAll(strings.ToLower(label), "_", "-")
}

// bareRouteHint shows how to rewrite the bare node name key: by the owner
// of an auth key of the same name when there is one (the likely owner of
// the node), else both forms with the tailnet's only tag and user, or
// generic examples.
func bareRouteHint(t *Tailnet, name string, authKeys *node) string {
	if k := authKeys.get(name); k != nil {
		if tags := k.get("tags"); tags != nil && tags.kind == kArray && len(tags.elems) > 0 && tags.elems[0].kind == kString {
			return fmt.Sprintf("key the approval by its owner: %q (auth key %q tags its nodes %s)", tags.elems[0].str+"/"+name, name, tags.elems[0].str)
		}
		if u := k.get("user"); u != nil && u.kind == kString {
			return fmt.Sprintf("key the approval by its owner: %q (auth key %q registers %s's nodes)", u.str+"/"+name, name, u.str)
		}
	}
	tag, user := "tag:router", "alice@example.com"
	if len(t.Policy.TagOwners) == 1 {
		for k := range t.Policy.TagOwners {
			tag = k
		}
	}
	if len(t.Users) == 1 {
		for k := range t.Users {
			user = k
		}
	}
	return fmt.Sprintf("key the approval by its owner: %q for a node carrying %s, or %q for %s's own node", tag+"/"+name, tag, user+"/"+name, user)
}
