// Package policy compiles a Tailscale policy (acls, grants, ssh, nodeAttrs,
// autoApprovers, tests) and evaluates it against a node inventory into
// what the coordination server sends each node.
//
// Use:
//
//	p, diags := policy.Compile(tailnet)     // validates; pure function of the config
//	if diags.HasErrors() { ... }            // each Diagnostic carries a field path such as "acls[3].dst[0]"
//	res := p.Evaluate(nodes, policy.Options{ControlURL: "https://ctl.example.com"})
//	v := res.Node(id)                       // *NodeView: PacketFilter, Peers (a PeerSet), SSH, CapMap, AllowedIPs, PrimaryRoutes
//	peers := res.Peers(id)                  // []Peer: the peers with the routes each carries (built per call)
//	res, affected := res.Update(newNodes)   // after inventory changes: resend the views of `affected` only
//	saved := res.Primaries()                // elected subnet routers; pass back as Options.Primaries after a restart
//	routes := p.ApproveRoutes(node)         // advertised routes that autoApprovers approve
//	failures := p.RunTests(policy.TestInventory(tailnet, nodes)) // one Diagnostic per failed assertion
//
// Compile parses every alias once. Evaluate resolves each rule's sources
// and destinations against the inventory once (address sets and node
// bitsets, through indexes of tags, users and addresses); per-node views
// are computed on first use and cached, so a server asking for one node
// does not pay for the others. Update re-resolves only the rules a changed
// node can match and carries the other rules and unaffected views over.
// Results are safe for concurrent use; the slices in views are shared and
// must be treated as read-only.
//
// Primary routers are elected by registration order (Node.Created) among
// the online routers of a subnet, and stay primary while they are online
// and approved: the election is state that Update carries and Evaluate
// takes from Options.Primaries (see PrimaryKey).
//
// Node.ApprovedRoutes is taken as final: Evaluate does not apply
// autoApprovers itself. Callers (reconcile, control) store the union of
// manual approvals and ApproveRoutes when a node advertises routes.
//
// docs/policy.md describes the semantics, which follow what Tailscale's
// control plane computes, and the conformance suite that checks them.
package policy
