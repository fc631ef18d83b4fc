package reconcile

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
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
//   - a deleted route approval, or prefixes removed from one: the nodes
//     (by name, or carrying the tag) that lose the approval.
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
		case c.Kind == KindRoute && c.Action != ActionCreate:
			removed := removedPrefixes(c.Before, c.After)
			if len(removed) == 0 {
				break
			}
			match := func(n Node) bool { return n.Name == c.Name }
			if strings.HasPrefix(c.Name, "tag:") {
				match = carries(c.Name)
			}
			if ns := matching(live, match); len(ns) > 0 {
				c.Impact = append(c.Impact, Impact{
					Message: fmt.Sprintf("%s no longer approved on %s", strings.Join(removed, ", "), countNodes(len(ns))),
					Nodes:   ns,
				})
			}
		}
	}
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
