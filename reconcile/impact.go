package reconcile

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tailplane/tailplane/schema"
)

// Node is what a plan needs to know about one registered node: the facts
// the nodes table holds, nothing derived from policy.
type Node struct {
	ID        int64
	Name      string   // MagicDNS name (given_name), else the reported hostname
	User      string   // owning user's login; "" for tagged nodes
	Tags      []string // tags the node carries
	AuthKey   string   // name of the auth key it registered with; "" if none
	LoggedOut bool
}

// Impact is one effect of a Change on registered nodes.
type Impact struct {
	Message string   `json:"message"` // "2 nodes will be logged out"
	Nodes   []string `json:"nodes"`   // names of the affected nodes, sorted
}

// maxImpactNames is how many node names the text rendering lists.
const maxImpactNames = 5

// AssessImpact annotates the plan's changes with their effect on the given
// registered nodes (logged-out nodes are ignored). It states only what the
// nodes table shows:
//   - a deleted user: its nodes will be logged out;
//   - a deleted auth key: it registers no new nodes; nodes registered with
//     it keep running;
//   - a deleted tagOwner: the nodes that carry the tag;
//   - a route approval: the nodes its owner and name match (created or
//     changed), those that lose prefixes (narrowed or deleted), and a
//     node that has the key's name but another owner.
//
// Calling it again replaces earlier annotations.
func (p *Plan) AssessImpact(nodes []Node) {
	if p == nil {
		return
	}
	var live []Node
	for _, n := range nodes {
		if !n.LoggedOut {
			live = append(live, n)
		}
	}
	for i := range p.Changes {
		c := &p.Changes[i]
		c.Impact = nil
		switch {
		case c.Kind == KindUser && c.Action == ActionDelete:
			if ns := matching(live, func(n Node) bool { return n.User == c.Name }); len(ns) > 0 {
				c.Impact = append(c.Impact, Impact{Message: countNodes(len(ns)) + " will be logged out", Nodes: ns})
			}
		case c.Kind == KindAuthKey && c.Action == ActionDelete:
			ns := matching(live, func(n Node) bool { return n.AuthKey == c.Name })
			msg := "registers no new nodes"
			if len(ns) > 0 {
				verb := "keep"
				if len(ns) == 1 {
					verb = "keeps"
				}
				msg += fmt.Sprintf(" (%s registered with it %s running)", countNodes(len(ns)), verb)
			}
			c.Impact = append(c.Impact, Impact{Message: msg, Nodes: ns})
		case c.Kind == KindTagOwner && c.Action == ActionDelete:
			if ns := matching(live, carries(c.Name)); len(ns) > 0 {
				verb := "carry"
				if len(ns) == 1 {
					verb = "carries"
				}
				c.Impact = append(c.Impact, Impact{Message: fmt.Sprintf("%s %s %s", countNodes(len(ns)), verb, c.Name), Nodes: ns})
			}
		case c.Kind == KindRoute:
			c.Impact = routeImpact(c, live)
		case c.Kind == KindLogin:
			c.Impact = loginImpact(c)
		}
	}
}

// routeImpact states which nodes a route approval applies to (see
// schema.RouteKey): after a create or an update the nodes it matches, and
// a node with the key's name but another owner; after an update or a
// delete the nodes that lose prefixes. A key that is no owner (a bare node
// name an older tailplane accepted) matched nothing and says so.
func routeImpact(c *Change, live []Node) []Impact {
	var out []Impact
	k, ok := schema.ParseRouteKey(c.Name)
	if !ok {
		verb := "approves"
		if c.Action == ActionDelete {
			verb = "approved"
		}
		return []Impact{{Message: verb + " no node: the key names no owner (a bare node name is no longer honored)", Nodes: []string{}}}
	}
	match := func(n Node) bool { return k.Approves(n.Name, n.User, n.Tags) }
	ns := matching(live, match)
	if removed := removedPrefixes(c.Before, c.After); len(removed) > 0 && len(ns) > 0 {
		out = append(out, Impact{
			Message: fmt.Sprintf("%s no longer approved on %s", strings.Join(removed, ", "), countNodes(len(ns))),
			Nodes:   ns,
		})
	}
	if c.Action == ActionDelete {
		return out
	}
	if len(ns) == 0 {
		out = append(out, Impact{Message: "applies to no registered node", Nodes: ns})
	} else {
		out = append(out, Impact{Message: "applies to " + countNodes(len(ns)), Nodes: ns})
	}
	if k.Node == "" {
		return out
	}
	for _, n := range live {
		if n.Name == k.Node && !match(n) {
			out = append(out, Impact{
				Message: "not to 1 node that has the name but is owned by " + ownerOf(n),
				Nodes:   []string{n.Name},
			})
		}
	}
	return out
}

// ownerOf names a node's owner: its tags, else its user.
func ownerOf(n Node) string {
	if len(n.Tags) > 0 {
		return strings.Join(n.Tags, ", ")
	}
	if n.User == "" {
		return "nobody"
	}
	return n.User
}

func carries(tag string) func(Node) bool {
	return func(n Node) bool { return slices.Contains(n.Tags, tag) }
}

func matching(nodes []Node, f func(Node) bool) []string {
	names := []string{}
	for _, n := range nodes {
		if f(n) {
			names = append(names, n.Name)
		}
	}
	slices.Sort(names)
	return names
}

// removedPrefixes lists the routes in before that after lacks. Either side
// may be nil (a route object created or deleted).
func removedPrefixes(before, after json.RawMessage) []string {
	var b, a []string
	_ = json.Unmarshal(before, &b)
	_ = json.Unmarshal(after, &a)
	var out []string
	for _, p := range b {
		if !slices.Contains(a, p) {
			out = append(out, p)
		}
	}
	return out
}

func countNodes(n int) string {
	if n == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes", n)
}

// loginImpact states what a change of login.oidc does: a new issuer or
// client affects every future login (registered nodes keep running); an
// added or removed provider switches between OIDC and admin approval.
func loginImpact(c *Change) []Impact {
	var before, after oidcValue
	_ = json.Unmarshal(c.Before, &before)
	_ = json.Unmarshal(c.After, &after)
	var msg string
	switch {
	case c.Action == ActionCreate:
		msg = "every future login goes to " + after.Issuer + " (client " + after.ClientID + ")"
	case c.Action == ActionDelete:
		msg = "every future login waits for an admin to approve it by ID (no identity provider)"
	case before.Issuer != after.Issuer || before.ClientID != after.ClientID:
		msg = "every future login goes to " + after.Issuer + " (client " + after.ClientID + ") instead of " +
			before.Issuer + " (client " + before.ClientID + ")"
	default:
		msg = "applies to every future login"
	}
	return []Impact{{Message: msg + "; registered nodes keep running", Nodes: []string{}}}
}
