package server

import (
	"context"
	"errors"

	"github.com/tailplane/tailplane/control"
	"tailscale.com/tailcfg"
)

// Relay mesh between replicas (docs/deploy.md, "Relay mesh"): with a mesh
// key, the embedded relay admits the other replicas' relays and meshes with
// those of Config.DERPMeshWith, and the DERP map lists them after it in its
// region. Without a key, nothing changes: one relay of its own.

// startMesh meshes d with cfg.DERPMeshWith and returns the mesh (nil
// without a mesh key) and the DERP map to hand to clients.
func startMesh(ctx context.Context, cfg Config, d *control.DERP) (*control.DERPMesh, *tailcfg.DERPMap, error) {
	if cfg.DERPMeshKey == "" && len(cfg.DERPMeshWith) == 0 {
		return nil, d.Map, nil
	}
	mesh, err := d.StartMesh(ctx, cfg.DERPMeshWith)
	if err != nil {
		return nil, nil, err
	}
	derpMap := d.MapWithPeers(cfg.DERPMeshWith)
	for _, r := range derpMap.Regions {
		cfg.Logf("embedded DERP relay meshed with %d other relay(s) of region %d", len(r.Nodes)-1, r.RegionID)
	}
	return mesh, derpMap, nil
}

// relayLogf is where the embedded relay logs: with a mesh key, the
// server's log, which then tells of mesh connections and of relay clients
// refused (a replica with another key among them); without one, nowhere.
func relayLogf(cfg Config) func(format string, args ...any) {
	if cfg.DERPMeshKey == "" {
		return nil
	}
	return cfg.Logf
}

// pinNote says how clients pin n's certificate, for the startup log: the
// other replicas' --derp-mesh-with entries need it.
func pinNote(n *tailcfg.DERPNode) string {
	if n.CertName == "" {
		return ""
	}
	return ", certificate " + n.CertName
}

// SetDERPMeshPeers replaces the other replicas' relays (as
// Config.DERPMeshWith): the relay meshes with the new set, and every
// connected node gets the DERP map listing it. It needs a mesh key.
func (s *Server) SetDERPMeshPeers(ctx context.Context, peers []*tailcfg.DERPNode) error {
	if s.mesh == nil {
		return errors.New("server: the embedded relay has no mesh (no DERPMeshKey, or an external DERPMap)")
	}
	s.mesh.SetPeers(peers)
	return s.ctrl.SetDERPMap(ctx, s.derp.MapWithPeers(peers))
}
