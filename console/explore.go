package console

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"tailscale.com/tailcfg"

	"github.com/tailplane/tailplane/policy"
)

// accessRow is one line of the policy explorer: the other node, the ports
// and protocols, and the rule that allows it.
type accessRow struct {
	Peer, PeerID    string
	Ports, Protocol string
	Rule, Pos, Link string
}

// policyPage is the policy explorer: pick a node, see whom it may reach
// and who may reach it, rule by rule, as the served policy says.
func (c *Console) policyPage(w http.ResponseWriter, r *http.Request) {
	nodes, err := c.visibleNodes(r.Context(), viewerOf(r))
	if err != nil {
		c.problem(w, r, http.StatusServiceUnavailable, "Nodes unavailable", err.Error(), "The coordination server may be shutting down.")
		return
	}
	d := map[string]any{"Nodes": nodes}
	raw := r.URL.Query().Get("node")
	if raw == "" {
		c.render(w, r, http.StatusOK, "policy.html", d)
		return
	}
	n, ok := c.viewedNode(w, r, raw)
	if !ok {
		return
	}
	out, in, err := c.cfg.Control.Access(r.Context(), n.ID)
	if err != nil {
		c.nodeError(w, r, err)
		return
	}
	all, err := c.cfg.Control.Nodes(r.Context())
	if err != nil {
		c.problem(w, r, http.StatusServiceUnavailable, "Nodes unavailable", err.Error(), "The coordination server may be shutting down.")
		return
	}
	names := map[tailcfg.NodeID]string{}
	for _, o := range all {
		names[o.ID] = o.Name
	}
	d["N"] = n
	d["Out"] = c.accessRows(out, names, func(a policy.Access) tailcfg.NodeID { return a.To })
	d["In"] = c.accessRows(in, names, func(a policy.Access) tailcfg.NodeID { return a.From })
	d["Invisible"] = n.PendingApproval || n.LoggedOut
	c.render(w, r, http.StatusOK, "policy.html", d)
}

func (c *Console) accessRows(as []policy.Access, names map[tailcfg.NodeID]string, other func(policy.Access) tailcfg.NodeID) []accessRow {
	out := make([]accessRow, 0, len(as))
	for _, a := range as {
		id := other(a)
		out = append(out, accessRow{
			Peer: names[id], PeerID: strconv.FormatInt(int64(id), 10),
			Ports: portsString(a.Ports), Protocol: protosString(a.Protos),
			Rule: a.Rule, Pos: a.Pos.String(), Link: c.posLink(a.Pos),
		})
	}
	return out
}

// portsString renders port ranges as policies write them: "*", "22",
// "8000-8999", joined by ", ".
func portsString(ps []tailcfg.PortRange) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		switch {
		case p.First == 0 && p.Last == 65535:
			parts[i] = "*"
		case p.First == p.Last:
			parts[i] = strconv.Itoa(int(p.First))
		default:
			parts[i] = fmt.Sprintf("%d-%d", p.First, p.Last)
		}
	}
	return strings.Join(parts, ", ")
}

// protoNames are the IP protocols by number that policies name most.
var protoNames = map[int]string{1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp"}

// protosString renders IP protocol numbers; nil is the default set.
func protosString(ps []int) string {
	if ps == nil {
		return "tcp, udp, icmp"
	}
	parts := make([]string, len(ps))
	for i, p := range ps {
		if n, ok := protoNames[p]; ok {
			parts[i] = n
		} else {
			parts[i] = strconv.Itoa(p)
		}
	}
	return strings.Join(parts, ", ")
}
