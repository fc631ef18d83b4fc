package control

import (
	"reflect"

	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
)

// peerPolicy is everything netmaps need from the tailnet's policy: who sees
// whom, and each node's inbound packet filter and SSH policy.
type peerPolicy interface {
	// CanSee reports whether viewer gets peer in its netmap.
	CanSee(viewer, peer *node) bool
	// Filter returns n's packet filter. Nodes with equal filters may share
	// one slice; callers must not modify it. Empty means deny all.
	Filter(n *node) []tailcfg.FilterRule
	// SSHPolicy returns the SSH rules n enforces; nil means no Tailscale SSH.
	SSHPolicy(n *node) *tailcfg.SSHPolicy
}

// compilePolicy turns the declared policy into a peerPolicy for the
// current set of nodes. It is the one place that talks to the policy
// engine.
func compilePolicy(t *schema.Tailnet, nodes map[tailcfg.NodeID]*node) peerPolicy {
	return allowAll{}
}

// allowAllFilter lets every node reach every port of every other node.
var allowAllFilter = []tailcfg.FilterRule{{
	SrcIPs:   []string{"*"},
	DstPorts: []tailcfg.NetPortRange{{IP: "*", Ports: tailcfg.PortRangeAny}},
}}

// allowAll is the policy used until the policy engine is wired in: full
// visibility and no packet filtering.
type allowAll struct{}

func (allowAll) CanSee(viewer, peer *node) bool     { return true }
func (allowAll) Filter(*node) []tailcfg.FilterRule  { return allowAllFilter }
func (allowAll) SSHPolicy(*node) *tailcfg.SSHPolicy { return nil }

// sameFilter reports whether two filters are equal, cheaply when they share
// storage.
func sameFilter(a, b []tailcfg.FilterRule) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	return reflect.DeepEqual(a, b)
}
