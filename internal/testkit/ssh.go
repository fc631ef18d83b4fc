package testkit

import (
	"context"
	"fmt"
	"os/exec"
	"os/user"
	"testing"

	"github.com/tailplane/tailplane/internal/tailscaled"
)

// SSHUser checks that the system ssh client, which `tailscale ssh` runs,
// is installed (failing t with an install hint if not), and returns the
// user tests log in as over Tailscale SSH: the current one.
func SSHUser(t testing.TB) *user.User {
	t.Helper()
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Fatalf("tailscale ssh runs the system ssh client, and there is none: %v (install openssh-client)", err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return me
}

// WaitSSHHostKeys waits until n has peer (its MagicDNS name with the
// trailing dot) online and knows its SSH host keys, which the tailscale
// ssh CLI pins.
func WaitSSHHostKeys(t testing.TB, ctx context.Context, n *tailscaled.Node, peer string) {
	t.Helper()
	WaitFor(t, ctx, "the SSH host keys of "+peer, func() (bool, string) {
		st, err := TailscaleStatus(ctx, n)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range st.Peer {
			if p.DNSName == peer {
				return len(p.SSH_HostKeys) > 0 && p.Online, fmt.Sprint(p.SSH_HostKeys)
			}
		}
		return false, peer + " is not a peer"
	})
}
