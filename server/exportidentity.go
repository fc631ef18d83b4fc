package server

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/types/key"
)

// IdentityExport is the identity a PostgreSQL database holds, as the files
// a single node on SQLite keeps it in (noise.key, and the embedded relay's
// derp-cert.pem and derp-key.pem), checked against a state directory and
// ready to be written there: `tailplane store copy --to-state-dir`, the
// way back from replicas to a single node. See PlanIdentityExport.
type IdentityExport struct {
	dir   string
	files []identityFile // in the order they are written
}

type identityFile struct {
	name string
	data []byte
	same bool // the directory holds it already
}

// PlanIdentityExport reads the identity st (PostgreSQL) holds and checks
// it against stateDir's files, writing nothing: a file there that holds
// another key or certificate fails it unless overwrite, so that a copy
// into the wrong directory is refused before any table is copied. A
// database without a relay certificate (its replicas served HTTPS, or no
// embedded relay) exports the Noise key alone; one without a Noise key
// fails, since clients would have to register again.
func PlanIdentityExport(ctx context.Context, st *store.Store, stateDir string, overwrite bool) (*IdentityExport, error) {
	if st.ReplicaID() == "" {
		return nil, errors.New("server: the identity is exported from PostgreSQL only (SQLite keeps it in the state directory)")
	}
	noise, ok, err := st.LookupServerState(ctx, noiseKeyState)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("server: the database holds no Noise key (server_state \"noise_key\"): no replica ever started on it (hint: copy from the database the replicas ran on)")
	}
	var k key.MachinePrivate
	if err := k.UnmarshalText([]byte(noise)); err != nil {
		return nil, fmt.Errorf("server: the database's Noise key (server_state %q) is not a machine private key: %w", noiseKeyState, err)
	}
	x := &IdentityExport{dir: stateDir, files: []identityFile{{name: "noise.key", data: []byte(noise + "\n")}}}
	cert, ok, err := st.LookupServerState(ctx, derpCertState)
	if err != nil {
		return nil, err
	}
	if ok {
		certPEM, keyPEM, err := splitCertPEM([]byte(cert))
		if err != nil {
			return nil, fmt.Errorf("server: the database's relay certificate (server_state %q): %w", derpCertState, err)
		}
		x.files = append(x.files, identityFile{name: "derp-cert.pem", data: certPEM}, identityFile{name: "derp-key.pem", data: keyPEM})
	}
	for i := range x.files {
		f := &x.files[i]
		path := filepath.Join(stateDir, f.name)
		have, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("server: %w", err)
		case sameIdentityFile(have, f.data):
			f.same = true
		case !overwrite:
			return nil, fmt.Errorf("server: %s holds another identity than the database's (hint: copy into a new state directory, or with --overwrite)", path)
		}
	}
	return x, nil
}

// sameIdentityFile reports whether a file holding have holds what want
// says: the same bytes but for surrounding space, or the same PEM blocks
// (type and content) however they are laid out.
func sameIdentityFile(have, want []byte) bool {
	if bytes.Equal(bytes.TrimSpace(have), bytes.TrimSpace(want)) {
		return true
	}
	a, b := pemBlocks(have), pemBlocks(want)
	if len(a) == 0 || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || !bytes.Equal(a[i].Bytes, b[i].Bytes) {
			return false
		}
	}
	return true
}

func pemBlocks(b []byte) []*pem.Block {
	var out []*pem.Block
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return out
		}
		out = append(out, blk)
	}
}

// splitCertPEM splits the relay certificate's server_state value, its
// certificate's PEM blocks and then its key's, into the two files.
func splitCertPEM(b []byte) (certPEM, keyPEM []byte, err error) {
	for _, blk := range pemBlocks(b) {
		switch {
		case blk.Type == "CERTIFICATE":
			certPEM = append(certPEM, pem.EncodeToMemory(blk)...)
		case strings.HasSuffix(blk.Type, "PRIVATE KEY"):
			keyPEM = append(keyPEM, pem.EncodeToMemory(blk)...)
		}
	}
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil, nil, errors.New("it does not hold both a certificate and its key")
	}
	return certPEM, keyPEM, nil
}

// Write writes the files (mode 0600, each through a new temporary file
// and a rename) and returns their names, those the directory held
// already among them (kept, their mode made 0600).
func (x *IdentityExport) Write() ([]string, error) {
	if err := os.MkdirAll(x.dir, 0o700); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	var names []string
	for _, f := range x.files {
		names = append(names, f.name)
		path := filepath.Join(x.dir, f.name)
		if f.same {
			if err := os.Chmod(path, 0o600); err != nil { // kept, but no looser than a new one
				return names[:len(names)-1], fmt.Errorf("server: %w", err)
			}
			continue
		}
		if err := control.WriteStateFile(path, f.data); err != nil {
			return names[:len(names)-1], fmt.Errorf("server: writing %s: %w", path, err)
		}
	}
	return names, nil
}
