package main

import (
	"fmt"

	"github.com/spf13/pflag"
	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/server"
	"tailscale.com/types/key"
)

// envDERPMeshKey is where serve reads the relay mesh key from without
// --derp-mesh-key-file.
const envDERPMeshKey = "TAILPLANE_DERP_MESH_KEY"

// meshFlags are serve's flags for meshing the embedded relay with the other
// replicas' relays (docs/deploy.md, "Relay mesh"). The key comes from a
// file or the environment, never a flag value.
type meshFlags struct {
	with    []string // --derp-mesh-with
	keyFile string   // --derp-mesh-key-file
}

func (m *meshFlags) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&m.with, "derp-mesh-with", nil, "the other replicas' relays to mesh the embedded relay with, as https://HOST:PORT[#sha256-raw:HEX] (comma-separated; this replica's own may be among them; needs a mesh key)")
	fs.StringVar(&m.keyFile, "derp-mesh-key-file", "", "file holding the relay mesh key every replica shares, 64 hex digits (default: $"+envDERPMeshKey+"; neither: no mesh)")
}

// apply fills cfg's relay mesh from the flags, reading the key file.
func (m *meshFlags) apply(cfg *server.Config, env *cliEnv) error {
	for _, s := range m.with {
		n, err := control.ParseMeshPeer(s)
		if err != nil {
			return fmt.Errorf("--derp-mesh-with: %w", err)
		}
		cfg.DERPMeshWith = append(cfg.DERPMeshWith, n)
	}
	k, err := readSecretFile(m.keyFile, envDERPMeshKey, env.getenv)
	if err != nil {
		return fmt.Errorf("--derp-mesh-key-file: %w", err)
	}
	if len(k) > 0 {
		if _, err := key.ParseDERPMesh(string(k)); err != nil { // its error may quote the key
			return fmt.Errorf("--derp-mesh-key-file: the relay mesh key must be 64 hexadecimal digits (make one with: openssl rand -hex 32)")
		}
	}
	cfg.DERPMeshKey = string(k)
	if len(cfg.DERPMeshWith) > 0 && cfg.DERPMeshKey == "" {
		return fmt.Errorf("--derp-mesh-with needs the relay mesh key every replica shares: --derp-mesh-key-file FILE or $%s (make one with: openssl rand -hex 32)", envDERPMeshKey)
	}
	return nil
}
