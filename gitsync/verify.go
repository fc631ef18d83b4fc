package gitsync

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// readKeyring reads and parses an armored OpenPGP keyring file.
func readKeyring(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read verify keyring: %w", err)
	}
	keys, err := openpgp.ReadArmoredKeyRing(strings.NewReader(string(b)))
	if err != nil {
		return "", fmt.Errorf("read verify keyring %s: %w (hint: export it with gpg --armor --export)", file, err)
	}
	if len(keys) == 0 {
		return "", fmt.Errorf("read verify keyring %s: no keys", file)
	}
	return string(b), nil
}

// verifying reports whether commits must be signed.
func (cfg Config) verifying() bool { return cfg.VerifyKeyring != "" || cfg.VerifyAllowedSigners != "" }

// verifyCommit checks c's signature, OpenPGP against cfg.VerifyKeyring or
// SSH against cfg.VerifyAllowedSigners, and returns the signer: the key's
// primary identity, or the allowed signer's principals. A missing,
// unacceptable or failing signature is an ErrNeedsCommit error; an
// unreadable key file is ErrRetry. Key files are read for every commit, so
// they can be updated without a restart.
func verifyCommit(c *object.Commit, cfg Config) (string, error) {
	id := c.Hash.String()
	sig := strings.TrimSpace(c.PGPSignature)
	switch {
	case sig == "":
		return "", commitErr(id, errors.New("not signed (hint: signature verification is on; sign commits with a trusted key)"))
	case strings.HasPrefix(sig, sshSigBegin):
		if cfg.VerifyAllowedSigners == "" {
			return "", commitErr(id, errors.New("signed with an SSH key, and no allowed signers file is configured"))
		}
		signers, err := readAllowedSigners(cfg.VerifyAllowedSigners)
		if err != nil {
			return "", &SyncError{Kind: ErrRetry, Err: err}
		}
		msg, err := unsignedBytes(c)
		if err != nil {
			return "", retryErr("commit %s: %w", shortID(id), err)
		}
		who, err := verifySSHSignature(sig, msg, signers, c.Committer.When)
		if err != nil {
			return "", commitErr(id, err)
		}
		return who, nil
	}
	if cfg.VerifyKeyring == "" {
		return "", commitErr(id, errors.New("signed with OpenPGP, and no OpenPGP keyring is configured"))
	}
	keyring, err := readKeyring(cfg.VerifyKeyring)
	if err != nil {
		return "", &SyncError{Kind: ErrRetry, Err: err}
	}
	ent, err := c.Verify(keyring)
	if err != nil {
		return "", commitErr(id, fmt.Errorf("OpenPGP signature does not verify against the keyring: %w", err))
	}
	if pi := ent.PrimaryIdentity(); pi != nil {
		return pi.Name, nil
	}
	return fmt.Sprintf("%X", ent.PrimaryKey.Fingerprint), nil
}

// unsignedBytes is the commit as signed: its encoding without the
// signature header.
func unsignedBytes(c *object.Commit) ([]byte, error) {
	o := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(o); err != nil {
		return nil, err
	}
	return readObject(o)
}
