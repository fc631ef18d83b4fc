package control

import (
	"context"
	"testing"
	"time"

	"tailscale.com/tailcfg"
)

// principalsOf lists the node IPs an SSH policy names.
func principalsOf(p *tailcfg.SSHPolicy) map[string]bool {
	out := map[string]bool{}
	if p == nil {
		return out
	}
	for _, r := range p.Rules {
		for _, pr := range r.Principals {
			out[pr.NodeIP] = true
		}
	}
	return out
}

// TestSSHPolicyFollowsMembership: a streaming destination gets a new SSH
// policy when a node that its rules name joins (without one, a new laptop
// cannot SSH to a server until the server reconnects), and a config
// without SSH rules clears the policy (a nil SSHPolicy means "unchanged").
func TestSSHPolicyFollowsMembership(t *testing.T) {
	tn := sshCheckTailnet()
	ts := startServer(t, tn, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dst := newRawNode(t, ts)
	dst.register(dst.registerReq(aliceKey))
	s := dst.stream(ctx, dst.mapReq(true))
	first := s.next()
	if first.SSHPolicy == nil {
		t.Fatal("the first netmap has no SSH policy")
	}
	src := newRawNode(t, ts)
	src.register(src.registerReq(serverKey)) // tag:server, a source of the first rule
	srcNode := src.selfMap().Node
	m := s.nextAbout(srcNode.ID)
	for m.SSHPolicy == nil {
		m = s.next()
	}
	if ip := srcNode.Addresses[0].Addr().String(); !principalsOf(m.SSHPolicy)[ip] {
		t.Errorf("SSH policy after %s joined names %v, want its address %s", srcNode.Name, principalsOf(m.SSHPolicy), ip)
	}

	next := sshCheckTailnet()
	next.Policy.SSH = nil
	if err := ts.SetConfig(ctx, next); err != nil {
		t.Fatal(err)
	}
	// Fails at the context's deadline when no empty policy comes.
	for m = s.next(); m.SSHPolicy == nil || len(m.SSHPolicy.Rules) > 0; m = s.next() {
	}
}
