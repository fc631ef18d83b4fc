package policy

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"tailscale.com/tailcfg"
)

// TestElectionDecided: the elections another server decided
// (Node.DecidedPrimary) elect the router it named while that router is a
// candidate, against the sticky previous primary and whether or not the
// router is online; a decision naming a node that is no candidate of the
// election is ignored and the election held as usual. Evaluate and
// Update (continuing from a Result whose primary was 3) agree, and Update
// reports the views a decided move changes.
func TestElectionDecided(t *testing.T) {
	p, diags := Compile(load(t, electionPolicy))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	subnet, via := PrimaryKey{Prefix: electSubnet}, PrimaryKey{Prefix: electSubnet, Via: "tag:via"}
	decide := func(id tailcfg.NodeID, keys ...PrimaryKey) func([]Node) {
		return func(ns []Node) {
			for i := range ns {
				if ns[i].ID == id {
					ns[i].DecidedPrimary = keys
				}
			}
		}
	}
	tests := []struct {
		name        string
		change      []func([]Node)
		primary     tailcfg.NodeID // the subnet's primary
		viaPrimary  tailcfg.NodeID // the via election's
		affectsSome bool           // Update reports views to resend
	}{
		{"nothing decided: held as usual", nil, 3, 3, false},
		{"a decided standby wins against the sticky primary", []func([]Node){decide(2, subnet)}, 2, 3, true},
		{"a decided router wins while offline", []func([]Node){decide(2, subnet), setOffline(true, 2)}, 2, 3, true},
		{"an offline router keeps the election decided for it, not the other", []func([]Node){decide(3, subnet), setOffline(true, 3)}, 3, 4, true},
		{"a decided via election", []func([]Node){decide(4, via)}, 3, 4, true},
		{"both elections decided", []func([]Node){decide(1, subnet), decide(4, via)}, 1, 4, true},
		{"a decision naming a client is ignored", []func([]Node){decide(10, subnet, via)}, 3, 3, false},
		{"a decision naming a router without the route approved is ignored",
			[]func([]Node){decide(2, subnet), setApproved(nil, 2)}, 3, 3, true},
		{"a via decision naming a router outside the via tags is ignored", []func([]Node){decide(1, via)}, 3, 3, false},
		{"a decided router without the route approved: the usual failover",
			[]func([]Node){decide(3, subnet), setApproved(nil, 3)}, 1, 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := p.Evaluate(electionNodes(), Options{})
			for _, n := range electionNodes() {
				before.Node(n.ID) // every view cached, as a server has them
			}
			nodes := electionNodes()
			for _, f := range tt.change {
				f(nodes)
			}
			want := Primaries{subnet: tt.primary, via: tt.viaPrimary}
			upd, affected := before.Update(slices.Clone(nodes))
			fresh := p.Evaluate(nodes, Options{Primaries: before.Primaries()})
			for what, res := range map[string]*Result{"Update": upd, "Evaluate": fresh} {
				if diff := cmp.Diff(want, res.Primaries()); diff != "" {
					t.Errorf("%s: Primaries (-want +got):\n%s", what, diff)
				}
				routes := map[string]tailcfg.NodeID{"alice": tt.primary, "bob": tt.viaPrimary, "self": tt.primary}
				if diff := cmp.Diff(routes, electionRoutes(res)); diff != "" {
					t.Errorf("%s: who routes 10.1.0.0/16 (-want +got):\n%s", what, diff)
				}
			}
			if got := len(affected) > 0; got != tt.affectsSome {
				t.Errorf("Update reports views %v to resend; want some: %v", affected, tt.affectsSome)
			}
			if tt.primary != 3 && !slices.Contains(affected, tt.primary) {
				t.Errorf("Update reports views %v; want the new primary %d among them", affected, tt.primary)
			}
		})
	}
}

// TestDecidedPrimaryIsElectionInput: a change of DecidedPrimary alone is
// no change of the node (its peers' views stay), only of elections.
func TestDecidedPrimaryIsElectionInput(t *testing.T) {
	a := Node{ID: 1, RoutableIPs: []netip.Prefix{electSubnet}}
	b := a
	b.DecidedPrimary = []PrimaryKey{{Prefix: electSubnet}}
	if sameNode(&a, &b, true) {
		t.Errorf("sameNode with elections: a change of DecidedPrimary is not seen")
	}
	if !sameNode(&a, &b, false) {
		t.Errorf("sameNode without elections: a change of DecidedPrimary counts as a change of the node")
	}
}
