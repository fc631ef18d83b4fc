package gitsync

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
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

// method builds the go-git auth method for url, reading secrets now. It
// also returns each secret read, in every form it is sent in, for the
// check's redactor, with the error too when one was read.
func (a Auth) method(url string) (transport.AuthMethod, []string, error) {
	ep, err := transport.NewEndpoint(url)
	if err != nil {
		return nil, nil, fmt.Errorf("parse remote URL: %w", err)
	}
	switch ep.Protocol {
	case "http", "https":
		if !a.hasSecret() {
			return nil, nil, nil
		}
		secret, err := readSecret(a.PasswordFile, a.PasswordEnv)
		if err != nil {
			return nil, nil, err
		}
		if a.Bearer {
			return &githttp.TokenAuth{Token: secret}, sentForms(secret), nil
		}
		user := a.Username
		if user == "" {
			user = "x-access-token"
		}
		// Basic auth sends base64("user:secret").
		forms := append(sentForms(secret), base64.StdEncoding.EncodeToString([]byte(user+":"+secret)))
		return &githttp.BasicAuth{Username: user, Password: secret}, forms, nil
	case "ssh":
		return a.sshMethod(ep.User)
	}
	return nil, nil, nil
}

// sshMethod is method for an ssh URL with the given user.
func (a Auth) sshMethod(user string) (transport.AuthMethod, []string, error) {
	if user == "" {
		user = "git"
	}
	var hostKeys []string
	if a.KnownHostsFile != "" {
		hostKeys = []string{a.KnownHostsFile}
	}
	check, err := gitssh.NewKnownHostsCallback(hostKeys...)
	if err != nil {
		return nil, nil, fmt.Errorf("read ssh known_hosts: %w (hint: set the known_hosts file, e.g. from ssh-keyscan)", err)
	}
	if a.SSHKeyFile == "" {
		agent, err := gitssh.NewSSHAgentAuth(user)
		if err != nil {
			return nil, nil, fmt.Errorf("ssh: no key file given and no ssh-agent: %w", err)
		}
		agent.HostKeyCallback = check
		return agent, nil, nil
	}
	var pass string
	if a.SSHKeyPassphraseFile != "" {
		if pass, err = readSecret(a.SSHKeyPassphraseFile, ""); err != nil {
			return nil, nil, err
		}
	}
	keys, err := gitssh.NewPublicKeysFromFile(user, a.SSHKeyFile, pass)
	if err != nil {
		return nil, sentForms(pass), fmt.Errorf("read ssh key %s: %w", a.SSHKeyFile, err)
	}
	keys.HostKeyCallback = check
	return keys, sentForms(pass), nil
}

// sentForms is secret as read and as it may appear escaped in a URL.
func sentForms(secret string) []string {
	if secret == "" {
		return nil
	}
	forms := []string{secret}
	for _, f := range []string{url.QueryEscape(secret), url.PathEscape(secret)} {
		if !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	return forms
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
