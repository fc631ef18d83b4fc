package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/internal/tailscaled"
	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
)

// capsConfig is a tailnet as a new user writes it: no acls (everything is
// allowed), no nodeAttrs, and one ssh rule letting alice's nodes log in to
// each other as sshUser.
func capsConfig(sshUser string) string {
	return `{
	"tailnet": {"name": "caps", "domain": "tail.test"},
	"users": {"alice@example.com": {}},
	"authKeys": {
		"laptops": {"user": "alice@example.com", "reusable": true, "secretHash": "` + testkit.SecretHash(aliceKey) + `"},
	},
	"ssh": [
		{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": [` + fmt.Sprintf("%q", sshUser) + `]},
	],
}
`
}

// cli runs the tailscale CLI of bins against n with a scratch HOME (the
// CLI and the system ssh write their known-hosts files there) and stdin
// closed. It returns the combined output.
func cli(ctx context.Context, bins *tailscaled.Binaries, n *tailscaled.Node, home string, args ...string) (string, error) {
	cmd := cliCmd(ctx, bins, n, home, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("tailscale %s: %w", strings.Join(args, " "), err)
	}
	return out.String(), err
}

// cliCmd is the command cli runs.
func cliCmd(ctx context.Context, bins *tailscaled.Binaries, n *tailscaled.Node, home string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bins.Tailscale, append([]string{"--socket=" + n.Socket}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	return cmd
}

// sshUser is testkit.SSHUser: the user tests log in as over Tailscale SSH.
func sshUser(t *testing.T) *user.User { return testkit.SSHUser(t) }

// TestDefaultCapsTailscaled: with a config that mentions neither nodeAttrs
// nor capabilities, real clients can turn on Tailscale SSH (`up --ssh` on
// a running node), log in to each other with `tailscale ssh` under an ssh
// rule, and send each other files with Taildrop.
func TestDefaultCapsTailscaled(t *testing.T) {
	me := sshUser(t)
	bins := testkit.TailscaledBinaries(t, "")
	run := startServeConfig(t, capsConfig(me.Username), false)
	ctx := run.ctx
	alpha := run.join(t, bins, "alpha")
	beta := run.join(t, bins, "beta")
	home := t.TempDir()

	testkit.WaitFor(t, ctx, "alpha and beta to see each other online with their peer APIs", func() (bool, string) {
		var states []string
		for _, n := range []*tailscaled.Node{alpha, beta} {
			st, err := statusOf(ctx, n)
			if err != nil {
				return false, err.Error()
			}
			ok := false
			for _, p := range st.Peer {
				states = append(states, fmt.Sprintf("%s online=%v", p.DNSName, p.Online))
				ok = ok || p.Online
			}
			if !ok {
				return false, strings.Join(states, ", ")
			}
		}
		return true, ""
	})

	t.Run("taildrop-file-cp-and-get", func(t *testing.T) {
		// tailscaled offers a peer as a target only when its own node has
		// the file-sharing capability; the receiver checks it too.
		testkit.WaitFor(t, ctx, "alpha to list beta as a Taildrop target", func() (bool, string) {
			out, err := cli(ctx, bins, alpha, home, "file", "cp", "--targets")
			if err != nil && strings.Contains(out, "not enabled") {
				t.Fatalf("%v: %s", err, out)
			}
			return err == nil && strings.Contains(out, "beta"), out
		})
		const content = "sent with taildrop\n"
		src := filepath.Join(t.TempDir(), "note.txt")
		if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := cli(ctx, bins, alpha, home, "file", "cp", src, "beta:"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		dst := t.TempDir()
		if out, err := cli(ctx, bins, beta, home, "file", "get", dst); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		got, err := os.ReadFile(filepath.Join(dst, "note.txt"))
		if err != nil {
			t.Fatalf("beta did not receive the file: %v", err)
		}
		if string(got) != content {
			t.Errorf("beta received %q, want %q", got, content)
		}
	})

	ok := t.Run("up-ssh-on-a-running-node", func(t *testing.T) {
		// On a node that has its netmap, tailscaled checks the ssh
		// capability before it turns the SSH server on.
		out, err := beta.Tailscale(ctx, "up", "--ssh", "--login-server="+run.url, "--hostname=beta")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var nm struct{ SSHPolicy *tailcfg.SSHPolicy }
		testkit.WaitFor(t, ctx, "beta's netmap to carry an SSH policy", func() (bool, string) {
			raw, err := beta.Tailscale(ctx, "debug", "netmap")
			if err != nil {
				return false, err.Error()
			}
			if err := json.Unmarshal(raw, &nm); err != nil {
				return false, err.Error()
			}
			return nm.SSHPolicy != nil && len(nm.SSHPolicy.Rules) > 0, string(raw)
		})
		if got := nm.SSHPolicy.Rules[0].SSHUsers[me.Username]; got != me.Username {
			t.Errorf("SSH policy maps %q to %q, want itself: %+v", me.Username, got, nm.SSHPolicy.Rules[0].SSHUsers)
		}
	})
	if !ok {
		t.FailNow() // tailscale ssh needs beta's SSH server
	}

	t.Run("tailscale-ssh", func(t *testing.T) {
		// The CLI pins beta's host keys, which beta reports once its SSH
		// server runs.
		testkit.WaitFor(t, ctx, "alpha to learn beta's SSH host keys", func() (bool, string) {
			st, err := statusOf(ctx, alpha)
			if err != nil {
				return false, err.Error()
			}
			for _, p := range st.Peer {
				if p.DNSName == "beta.tail.test." {
					return len(p.SSH_HostKeys) > 0, fmt.Sprint(p.SSH_HostKeys)
				}
			}
			return false, "beta is not a peer"
		})
		const greeting = "hello over tailscale ssh"
		out, err := cli(ctx, bins, alpha, home, "ssh", me.Username+"@beta", "echo", "'"+greeting+"'")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if strings.TrimSpace(out) != greeting {
			t.Errorf("tailscale ssh printed %q, want the command's output %q", out, greeting)
		}
	})
}

// TestSSHCheckRejectedTailscaled: under an SSH "check" rule on a server
// with interactive login off (no Config.Login), a real `tailscale ssh` is
// refused at once with the server's message instead of hanging while
// tailscaled retries the check callback.
func TestSSHCheckRejectedTailscaled(t *testing.T) {
	me := sshUser(t)
	tn := testTailnet()
	tn.Settings.SSH = true
	tn.Policy.SSH = []schema.SSHRule{{Action: "check", Src: []string{"autogroup:member"}, Dst: []string{"autogroup:self"}, Users: []string{me.Username}}}
	run, bins, alpha, _ := sshPair(t, tn, nil)
	ctx := run.ctx
	// A generous deadline: the rejection comes in well under a second; on
	// a server without the callback the session hangs for half an hour.
	sshCtx, sshCancel := context.WithTimeout(ctx, time.Minute)
	defer sshCancel()
	out, err := cli(sshCtx, bins, alpha, t.TempDir(), "ssh", me.Username+"@beta", "echo", "session-ran")
	if sshCtx.Err() != nil {
		t.Fatalf("tailscale ssh under a check rule still hangs after a minute; output so far: %q", out)
	}
	if err == nil || strings.Contains(out, "session-ran") {
		t.Fatalf("tailscale ssh under a check rule ran the command (err %v): %q", err, out)
	}
	t.Logf("tailscale ssh under a check rule: %v\n%s", err, out)
	if !strings.Contains(out, strings.TrimSpace(sshCheckLoginOff)) {
		t.Errorf("tailscale ssh printed %q, want the server's rejection %q", out, sshCheckLoginOff)
	}
}
