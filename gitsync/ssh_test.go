package gitsync

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshServer is a minimal Git-over-SSH server: it authenticates one client
// key and runs the real git-upload-pack for exec requests.
type sshServer struct {
	addr    string
	hostKey ssh.PublicKey
}

func newSSHServer(t *testing.T, root string, client ssh.PublicKey) *sshServer {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if string(key.Marshal()) == string(client.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(hostSigner)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serveSSH(t, c, cfg, root) })
		}
	})
	return &sshServer{addr: l.Addr().String(), hostKey: hostSigner.PublicKey()}
}

func serveSSH(t *testing.T, c net.Conn, cfg *ssh.ServerConfig, root string) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range creqs {
				if req.Type != "exec" || len(req.Payload) < 4 {
					req.Reply(req.Type == "env", nil)
					continue
				}
				cmd := string(req.Payload[4:]) // uint32 length, then the command
				service, repo, ok := strings.Cut(cmd, " ")
				if !ok || service != "git-upload-pack" {
					req.Reply(false, nil)
					return
				}
				req.Reply(true, nil)
				git := exec.Command("git", "upload-pack", filepath.Join(root, strings.Trim(repo, "'/")))
				git.Stdin, git.Stdout, git.Stderr = ch, ch, ch.Stderr()
				status := uint32(0)
				if err := git.Run(); err != nil {
					t.Logf("ssh server: %s: %v", cmd, err)
					status = 1
				}
				ch.CloseWrite()
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
				return
			}
		}()
	}
}

// TestSyncSSH follows a repository over ssh with a key file and a
// known_hosts file; an unknown host key is refused.
func TestSyncSSH(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit("first", v1, commitOpts{})
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	clientPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	srv := newSSHServer(t, u.root, clientPub)
	other := newSSHServer(t, u.root, clientPub) // a different host key

	dir := t.TempDir()
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	writeFile := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	writeFile("id_ed25519", pem.EncodeToMemory(block))
	knownHosts := writeFile("known_hosts", []byte(knownhosts.Line([]string{srv.addr}, srv.hostKey)+"\n"))
	wrongHosts := writeFile("wrong_hosts", []byte(knownhosts.Line([]string{srv.addr}, other.hostKey)+"\n"))

	for _, tc := range []struct {
		name  string
		hosts string
		want  string
	}{
		{"known-host", knownHosts, ""},
		{"host-key-mismatch", wrongHosts, "key mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSyncer(t, Config{
				URL:  "ssh://git@" + srv.addr + "/tailnet.git",
				Auth: Auth{SSHKeyFile: keyFile, KnownHostsFile: tc.hosts},
			})
			rev, err := s.sync(testContext(t))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				wantRev(t, rev, c1, v1)
				return
			}
			if rev != nil || KindOf(err) != ErrRetry || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("sync = %v, %v; want ErrRetry containing %q", rev, err, tc.want)
			}
		})
	}
}
