package gitsync

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// Auth says how to authenticate to the remote. Secrets are read from a file
// or an environment variable (never from a flag value, which would show in
// ps and shell history) on every fetch, so a rotated token is picked up
// without a restart. The zero value means no credentials: anonymous https,
// file:// and local paths, or ssh with the user's ssh-agent.
type Auth struct {
	// Username is the HTTP basic-auth user. Empty with a password:
	// "x-access-token", which GitHub, Gitea and GitLab accept for tokens.
	Username string
	// PasswordFile is a file holding the HTTP password or access token;
	// surrounding whitespace is trimmed. Empty: see PasswordEnv.
	PasswordFile string
	// PasswordEnv names an environment variable holding the password or
	// token. Empty, like an empty PasswordFile: no HTTP credentials.
	PasswordEnv string
	// Bearer sends the secret as "Authorization: Bearer <token>" instead of
	// basic auth. False: basic auth.
	Bearer bool
	// SSHKeyFile is a PEM or OpenSSH private key for ssh:// and scp-style
	// URLs. Empty: use the ssh-agent.
	SSHKeyFile string
	// SSHKeyPassphraseFile holds the key's passphrase. Empty: the key is
	// not encrypted.
	SSHKeyPassphraseFile string
	// KnownHostsFile is the known_hosts file that ssh host keys are checked
	// against; unknown hosts are refused. Empty: $SSH_KNOWN_HOSTS or
	// ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts.
	KnownHostsFile string
}

func (a Auth) validate() error {
	if a.PasswordFile != "" && a.PasswordEnv != "" {
		return errors.New("auth: set a password file or a password environment variable, not both")
	}
	if a.SSHKeyPassphraseFile != "" && a.SSHKeyFile == "" {
		return errors.New("auth: an ssh key passphrase file needs an ssh key file")
	}
	return nil
}

func (a Auth) hasSecret() bool { return a.PasswordFile != "" || a.PasswordEnv != "" }

// method builds the go-git auth method for url, reading secrets now.
func (a Auth) method(url string) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(url)
	if err != nil {
		return nil, fmt.Errorf("parse remote URL: %w", err)
	}
	switch ep.Protocol {
	case "http", "https":
		if !a.hasSecret() {
			return nil, nil
		}
		secret, err := readSecret(a.PasswordFile, a.PasswordEnv)
		if err != nil {
			return nil, err
		}
		if a.Bearer {
			return &githttp.TokenAuth{Token: secret}, nil
		}
		user := a.Username
		if user == "" {
			user = "x-access-token"
		}
		return &githttp.BasicAuth{Username: user, Password: secret}, nil
	case "ssh":
		user := ep.User
		if user == "" {
			user = "git"
		}
		var hostKeys []string
		if a.KnownHostsFile != "" {
			hostKeys = []string{a.KnownHostsFile}
		}
		check, err := gitssh.NewKnownHostsCallback(hostKeys...)
		if err != nil {
			return nil, fmt.Errorf("read ssh known_hosts: %w (hint: set the known_hosts file, e.g. from ssh-keyscan)", err)
		}
		if a.SSHKeyFile == "" {
			agent, err := gitssh.NewSSHAgentAuth(user)
			if err != nil {
				return nil, fmt.Errorf("ssh: no key file given and no ssh-agent: %w", err)
			}
			agent.HostKeyCallback = check
			return agent, nil
		}
		var pass string
		if a.SSHKeyPassphraseFile != "" {
			if pass, err = readSecret(a.SSHKeyPassphraseFile, ""); err != nil {
				return nil, err
			}
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, a.SSHKeyFile, pass)
		if err != nil {
			return nil, fmt.Errorf("read ssh key %s: %w", a.SSHKeyFile, err)
		}
		keys.HostKeyCallback = check
		return keys, nil
	}
	return nil, nil
}

func readSecret(file, env string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read secret: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("read secret: %s is empty", file)
		}
		return s, nil
	}
	s := strings.TrimSpace(os.Getenv(env))
	if s == "" {
		return "", fmt.Errorf("read secret: environment variable %s is empty or unset", env)
	}
	return s, nil
}
