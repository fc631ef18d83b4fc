package testkit

import (
	"os/exec"
	"os/user"
	"testing"
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
