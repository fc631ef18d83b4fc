package control

import (
	"context"

	"tailscale.com/tailcfg"
)

// The server's own DERP map (Config.DERPMap, or its relay's) may change
// while it serves: replicas come and go, and with them the relays of the
// region (derpmesh.go). SetDERPMap replaces it; the policy's derpMap is
// applied to the new map as to the old.

// SetDERPMap replaces the server's own DERP map with m (nil: no regions)
// and sends every connected node a delta with it, the policy's
// derpMap applied. A config prepared before is installed with m too.
func (s *Server) SetDERPMap(ctx context.Context, m *tailcfg.DERPMap) error {
	if m == nil {
		m = &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{}}
	}
	s.derpBase.Store(m)
	return s.do(ctx, func(w *world) error {
		// The latest map, not m: another SetDERPMap may have come after.
		dm, err := effectiveDERPMap(s.baseDERPMap(), w.tailnet.Policy.DERPMap)
		if err != nil {
			return err // cannot happen: the installed policy's derpMap parsed when it was prepared
		}
		before := w.netmapShape()
		w.derpMap = dm
		w.configDelta(before) // publishes; a delta with the new map (resync.go)
		return nil
	})
}

// baseDERPMap is the server's own DERP map: the last SetDERPMap's, or the
// one it started with.
func (s *Server) baseDERPMap() *tailcfg.DERPMap {
	if m := s.derpBase.Load(); m != nil {
		return m
	}
	return s.derpMap
}

// currentDERPMap is p's DERP map, made again from the server's map if
// that changed since p was prepared.
func (s *Server) currentDERPMap(p *Prepared) *tailcfg.DERPMap {
	base := s.baseDERPMap()
	if p.derpBase == base {
		return p.derpMap
	}
	if dm, err := effectiveDERPMap(base, p.tailnet.Policy.DERPMap); err == nil {
		return dm
	}
	return p.derpMap // cannot happen: p's policy derpMap parsed when p was prepared
}
