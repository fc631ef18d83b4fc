package gitsync

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// allowedSigner is one line of an allowed signers file (the format of git's
// gpg.ssh.allowedSignersFile, see ssh-keygen(1) "ALLOWED SIGNERS").
type allowedSigner struct {
	principals  string // as written: comma-separated, possibly with wildcards
	key         ssh.PublicKey
	namespaces  []string  // nil: any namespace
	validAfter  time.Time // zero: no bound
	validBefore time.Time // zero: no bound
}

// readAllowedSigners reads and parses an allowed signers file.
func readAllowedSigners(file string) ([]allowedSigner, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read allowed signers: %w", err)
	}
	signers, err := parseAllowedSigners(b)
	if err != nil {
		return nil, fmt.Errorf("read allowed signers %s: %w", file, err)
	}
	if len(signers) == 0 {
		return nil, fmt.Errorf("read allowed signers %s: no keys", file)
	}
	return signers, nil
}

// parseAllowedSigners parses lines of "principals [options] keytype key
// [comment]". Blank lines and # comments are skipped. Lines marked
// cert-authority are skipped too: certificate signatures are not supported.
func parseAllowedSigners(data []byte) ([]allowedSigner, error) {
	var out []allowedSigner
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		s, skip, err := parseAllowedSigner(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		if !skip {
			out = append(out, s)
		}
	}
	return out, nil
}

func parseAllowedSigner(line string) (s allowedSigner, skip bool, err error) {
	var rest string
	if line[0] == '"' {
		end := strings.IndexByte(line[1:], '"')
		if end < 0 {
			return s, false, errors.New("unterminated quoted principals")
		}
		s.principals, rest = line[1:end+1], line[end+2:]
	} else {
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			return s, false, errors.New("want principals, then a public key")
		}
		s.principals, rest = line[:i], line[i:]
	}
	if s.principals == "" {
		return s, false, errors.New("empty principals")
	}
	rest = strings.TrimSpace(rest)
	// What follows the principals is exactly an authorized_keys line.
	key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(rest))
	if err != nil {
		return s, false, fmt.Errorf("public key: %w", err)
	}
	s.key = key
	for _, opt := range options {
		name, value, hasValue := strings.Cut(opt, "=")
		name = strings.ToLower(name)
		value = strings.Trim(value, `"`)
		switch {
		case name == "cert-authority" && !hasValue:
			skip = true
		case name == "namespaces" && hasValue:
			s.namespaces = strings.Split(value, ",")
		case name == "valid-after" && hasValue:
			if s.validAfter, err = parseSignerTime(value); err != nil {
				return s, false, err
			}
		case name == "valid-before" && hasValue:
			if s.validBefore, err = parseSignerTime(value); err != nil {
				return s, false, err
			}
		default:
			return s, false, fmt.Errorf("unknown option %q", opt)
		}
	}
	return s, skip, nil
}

// parseSignerTime parses ssh-keygen's YYYYMMDD[HHMM[SS]][Z] (local time
// unless Z).
func parseSignerTime(v string) (time.Time, error) {
	loc := time.Local
	if t, ok := strings.CutSuffix(v, "Z"); ok {
		v, loc = t, time.UTC
	}
	for _, layout := range []string{"20060102", "200601021504", "20060102150405"} {
		if len(v) == len(layout) {
			if t, err := time.ParseInLocation(layout, v, loc); err == nil {
				return t, nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("bad time %q (want YYYYMMDD[HHMM[SS]][Z])", v)
}

// sshSig is the decoded blob of an armored SSH signature (OpenSSH's
// PROTOCOL.sshsig).
type sshSig struct {
	Version   uint32
	PublicKey []byte
	Namespace string
	Reserved  string
	HashAlg   string
	Signature []byte
}

const (
	sshSigMagic = "SSHSIG"
	sshSigBegin = "-----BEGIN SSH SIGNATURE-----"
	sshSigEnd   = "-----END SSH SIGNATURE-----"
)

// parseSSHSignature decodes an armored SSH signature.
func parseSSHSignature(armored string) (*sshSig, error) {
	body, ok := strings.CutPrefix(strings.TrimSpace(armored), sshSigBegin)
	if !ok {
		return nil, errors.New("not an SSH signature")
	}
	body, ok = strings.CutSuffix(body, sshSigEnd)
	if !ok {
		return nil, errors.New("SSH signature: missing end line")
	}
	blob, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(body), ""))
	if err != nil {
		return nil, fmt.Errorf("SSH signature: %w", err)
	}
	rest, ok := bytes.CutPrefix(blob, []byte(sshSigMagic))
	if !ok {
		return nil, errors.New("SSH signature: bad magic")
	}
	var sig sshSig
	if err := ssh.Unmarshal(rest, &sig); err != nil {
		return nil, fmt.Errorf("SSH signature: %w", err)
	}
	if sig.Version != 1 {
		return nil, fmt.Errorf("SSH signature: unsupported version %d", sig.Version)
	}
	return &sig, nil
}

// verifySSHSignature checks an armored SSH signature of message in the
// "git" namespace against the allowed signers, as of time when (the commit
// time), and returns the signer's principals.
func verifySSHSignature(armored string, message []byte, signers []allowedSigner, when time.Time) (string, error) {
	sig, err := parseSSHSignature(armored)
	if err != nil {
		return "", err
	}
	if sig.Namespace != "git" {
		return "", fmt.Errorf("SSH signature is for namespace %q, not git", sig.Namespace)
	}
	var digest []byte
	switch sig.HashAlg {
	case "sha256":
		h := sha256.Sum256(message)
		digest = h[:]
	case "sha512":
		h := sha512.Sum512(message)
		digest = h[:]
	default:
		return "", fmt.Errorf("SSH signature: unsupported hash %q", sig.HashAlg)
	}
	pub, err := ssh.ParsePublicKey(sig.PublicKey)
	if err != nil {
		return "", fmt.Errorf("SSH signature: %w", err)
	}
	var s ssh.Signature
	if err := ssh.Unmarshal(sig.Signature, &s); err != nil {
		return "", fmt.Errorf("SSH signature: %w", err)
	}
	if s.Format == ssh.KeyAlgoRSA {
		return "", errors.New("SSH signature uses SHA-1 RSA (ssh-rsa), which is not accepted")
	}
	signed := append([]byte(sshSigMagic), ssh.Marshal(struct {
		Namespace, Reserved, HashAlg string
		Hash                         []byte
	}{sig.Namespace, sig.Reserved, sig.HashAlg, digest})...)
	if err := pub.Verify(signed, &s); err != nil {
		return "", fmt.Errorf("SSH signature does not verify: %w", err)
	}
	fp := ssh.FingerprintSHA256(pub)
	for _, a := range signers {
		if !bytes.Equal(a.key.Marshal(), pub.Marshal()) {
			continue
		}
		if a.namespaces != nil && !matchesAny(a.namespaces, "git") {
			continue
		}
		if (!a.validAfter.IsZero() && when.Before(a.validAfter)) || (!a.validBefore.IsZero() && !when.Before(a.validBefore)) {
			continue
		}
		return a.principals, nil
	}
	return "", fmt.Errorf("SSH key %s is not an allowed signer for git at %s", fp, when.UTC().Format(time.RFC3339))
}

func matchesAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if p == s || p == "*" {
			return true
		}
	}
	return false
}
