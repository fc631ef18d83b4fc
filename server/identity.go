package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
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

// The server's identity: its Noise key (clients pin it) and the embedded
// relay's self-signed certificate (pinned in the DERP map). With SQLite
// both are files in the state directory, as they always were. With
// PostgreSQL they are server_state rows, so that every replica is the
// same server to a client; the first replica to start makes them, from
// its state directory's files when it has them (a server that ran on
// PostgreSQL before replicas keeps its identity), else new ones.
const (
	noiseKeyState = "noise_key"      // the key's text form ("privkey:…")
	derpCertState = "derp_self_cert" // the relay certificate's PEM, then its key's
	derpMeshState = "derp_mesh_key"  // the relays' mesh key: 64 hex digits
)

// identity is the server's identity, per the store it runs on.
type identity struct {
	noise key.MachinePrivate
	// derpCert is the shared relay certificate; nil with SQLite, where the
	// relay keeps its own in the state directory.
	derpCert *tls.Certificate
	// derpMeshKey is the key the replicas' relays mesh with; empty with
	// SQLite or without an embedded relay.
	derpMeshKey string
}

func loadIdentity(ctx context.Context, st *store.Store, cfg Config, host string) (identity, error) {
	if st.ReplicaID() == "" {
		k, err := control.LoadOrCreateNoiseKey(cfg.StateDir)
		return identity{noise: k}, err
	}
	k, err := sharedNoiseKey(ctx, st, cfg)
	if err != nil {
		return identity{}, err
	}
	id := identity{noise: k}
	if cfg.DERPMap == nil && cfg.TLS == nil {
		if id.derpCert, err = sharedDERPCert(ctx, st, cfg, host); err != nil {
			return identity{}, err
		}
	}
	if cfg.DERPMap == nil {
		id.derpMeshKey, _, err = st.ServerState(ctx, derpMeshState, func() (string, error) {
			var b [32]byte
			_, err := rand.Read(b[:])
			return hex.EncodeToString(b[:]), err
		})
		if err != nil {
			return identity{}, err
		}
	}
	return id, nil
}

// sharedNoiseKey is the database's Noise key, made from the state
// directory's noise.key (or anew) when the database has none.
func sharedNoiseKey(ctx context.Context, st *store.Store, cfg Config) (key.MachinePrivate, error) {
	file := filepath.Join(cfg.StateDir, "noise.key")
	local, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return key.MachinePrivate{}, fmt.Errorf("server: reading %s: %w", file, err)
	}
	localText := strings.TrimSpace(string(local))
	text, created, err := st.ServerState(ctx, noiseKeyState, func() (string, error) {
		if localText != "" {
			return localText, nil
		}
		b, err := key.NewMachine().MarshalText()
		return string(b), err
	})
	if err != nil {
		return key.MachinePrivate{}, err
	}
	var k key.MachinePrivate
	if err := k.UnmarshalText([]byte(text)); err != nil {
		return key.MachinePrivate{}, fmt.Errorf("server: the database's Noise key (server_state %q) is not a machine private key: %w", noiseKeyState, err)
	}
	switch {
	case created && localText != "":
		cfg.Logf("server: the Noise key of %s is now the database's, shared by every replica", file)
	case !created && localText != "" && localText != text:
		cfg.Logf("server: %s differs from the database's Noise key; serving the database's (shared by every replica) and leaving the file as it is", file)
	}
	return k, nil
}

// sharedDERPCert is the database's relay certificate, made from the state
// directory's derp-cert.pem and derp-key.pem (or anew) when it has none.
func sharedDERPCert(ctx context.Context, st *store.Store, cfg Config, host string) (*tls.Certificate, error) {
	text, _, err := st.ServerState(ctx, derpCertState, func() (string, error) {
		certPEM, err1 := os.ReadFile(filepath.Join(cfg.StateDir, "derp-cert.pem"))
		keyPEM, err2 := os.ReadFile(filepath.Join(cfg.StateDir, "derp-key.pem"))
		if err1 == nil && err2 == nil {
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err == nil {
				return string(certPEM) + string(keyPEM), nil
			}
		}
		certPEM, keyPEM, err := control.NewSelfSignedDERPCert(host)
		return string(certPEM) + string(keyPEM), err
	})
	if err != nil {
		return nil, err
	}
	b := []byte(text)
	c, err := tls.X509KeyPair(b, b) // each takes the blocks of its type
	if err != nil || !bytes.Contains(b, []byte("PRIVATE KEY")) {
		return nil, fmt.Errorf("server: the database's relay certificate (server_state %q) does not parse: %v", derpCertState, err)
	}
	return &c, nil
}
