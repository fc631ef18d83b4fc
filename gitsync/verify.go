package gitsync

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
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

// verifyCommit checks c's OpenPGP signature against the armored keyring and
// returns the signer's primary identity. A missing, SSH or failing signature
// is an ErrNeedsCommit error; an unreadable keyring file is ErrRetry.
//
// SSH signatures (gpg.format=ssh) are refused rather than verified: go-git
// has no SSH signature verification, and trusting a second key format would
// double the surface that decides what reaches the tailnet. Sign config
// commits with OpenPGP keys.
func verifyCommit(c *object.Commit, keyringFile string) (string, error) {
	id := c.Hash.String()
	sig := strings.TrimSpace(c.PGPSignature)
	switch {
	case sig == "":
		return "", commitErr(id, errors.New("not signed (hint: signature verification is on; sign commits with a key from the keyring)"))
	case strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----"):
		return "", commitErr(id, errors.New("signed with an SSH key; only OpenPGP signatures are accepted"))
	}
	keyring, err := readKeyring(keyringFile)
	if err != nil {
		return "", &SyncError{Kind: ErrRetry, Err: err}
	}
	ent, err := c.Verify(keyring)
	if err != nil {
		return "", commitErr(id, fmt.Errorf("signature does not verify against the keyring: %w", err))
	}
	if pi := ent.PrimaryIdentity(); pi != nil {
		return pi.Name, nil
	}
	return fmt.Sprintf("%X", ent.PrimaryKey.Fingerprint), nil
}
