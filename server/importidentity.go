package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tailplane/tailplane/store"
)

// ImportIdentity makes the state directory's server identity the
// PostgreSQL database's, as the first replica starting on that directory
// would: its noise.key, and its relay certificate (derp-cert.pem and
// derp-key.pem), each when the database has none yet. `tailplane store
// copy` calls it, so that the clients of a single node moved to replicas
// need not register again. It returns the files imported; a file the
// directory lacks is skipped (a replica then makes the value anew). A
// database that holds another key or certificate already is an error.
func ImportIdentity(ctx context.Context, st *store.Store, stateDir string) (imported []string, err error) {
	if st.ReplicaID() == "" {
		return nil, errors.New("server: the identity is imported into PostgreSQL only (SQLite keeps it in the state directory)")
	}
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(stateDir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		return b, nil
	}
	cfg := Config{StateDir: stateDir, Logf: func(string, ...any) {}}
	local, err := read("noise.key")
	if err != nil {
		return nil, err
	}
	if len(local) > 0 {
		k, err := sharedNoiseKey(ctx, st, cfg)
		if err != nil {
			return nil, err
		}
		if text, _ := k.MarshalText(); string(text) != strings.TrimSpace(string(local)) {
			return nil, fmt.Errorf("server: the database has a Noise key already, and it is not %s's (hint: copy into a new database, or with --overwrite)", filepath.Join(stateDir, "noise.key"))
		}
		imported = append(imported, "noise.key")
	}
	certPEM, err1 := read("derp-cert.pem")
	keyPEM, err2 := read("derp-key.pem")
	if err := errors.Join(err1, err2); err != nil || len(certPEM) == 0 || len(keyPEM) == 0 {
		return imported, err
	}
	file, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return imported, fmt.Errorf("server: %s and derp-key.pem do not make a certificate: %w", filepath.Join(stateDir, "derp-cert.pem"), err)
	}
	shared, err := sharedDERPCert(ctx, st, cfg, "")
	if err != nil {
		return imported, err
	}
	if !bytes.Equal(shared.Certificate[0], file.Certificate[0]) {
		return imported, fmt.Errorf("server: the database has a relay certificate already, and it is not %s (hint: copy into a new database, or with --overwrite)", filepath.Join(stateDir, "derp-cert.pem"))
	}
	return append(imported, "derp-cert.pem", "derp-key.pem"), nil
}
