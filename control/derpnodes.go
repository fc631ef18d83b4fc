package control

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"tailscale.com/tailcfg"
)

// The relays of the other replicas in the DERP map. Each replica's map
// lists its own relay first and, as further nodes of the same region, the
// other replicas' relays (meshed with it, see derpmesh.go): a client that
// cannot reach the first node of its home region tries the next one, so a
// node whose replica died keeps relaying through another. Package replica
// keeps the list current (SetRelayPeers).

// relayPeers is the list SetRelayPeers last set; nil until then.
type relayPeers struct {
	nodes []*tailcfg.DERPNode // immutable once set
}

// baseDERPMap is the server's own map (Config.DERPMap or the embedded
// relay's) with the other replicas' relays appended to the embedded
// relay's region. base is never modified.
func (s *Server) baseDERPMap() *tailcfg.DERPMap {
	peers := s.relayPeers.Load()
	if peers == nil || len(peers.nodes) == 0 || s.embeddedRegion == 0 {
		return s.derpMap
	}
	own := s.derpMap.Regions[s.embeddedRegion]
	if own == nil {
		return s.derpMap
	}
	out := &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{}, HomeParams: s.derpMap.HomeParams, OmitDefaultRegions: s.derpMap.OmitDefaultRegions}
	for id, r := range s.derpMap.Regions {
		out.Regions[id] = r
	}
	r := *own
	r.Nodes = slices.Concat(own.Nodes, peers.nodes)
	out.Regions[s.embeddedRegion] = &r
	return out
}

// SetRelayPeers makes the DERP map list nodes, the other replicas'
// relays, after this server's own relay in its region (their names are
// made unique in the region). When that changes the map served, every
// connected node gets a new netmap. It does nothing without an embedded
// relay. Calling it again with the same nodes also repairs a map a
// concurrent Install had prepared with the list before.
func (s *Server) SetRelayPeers(ctx context.Context, nodes []tailcfg.DERPNode) error {
	if s.embeddedRegion == 0 {
		return nil
	}
	list := make([]*tailcfg.DERPNode, len(nodes))
	for i, n := range nodes {
		n.RegionID = s.embeddedRegion
		n.Name = fmt.Sprintf("%d-peer%d", s.embeddedRegion, i+1)
		list[i] = &n
	}
	s.relayPeers.Store(&relayPeers{nodes: list})
	return s.do(ctx, func(w *world) error {
		m, err := effectiveDERPMap(s.baseDERPMap(), w.tailnet.Policy.DERPMap)
		if err != nil || reflect.DeepEqual(m, w.derpMap) {
			return err
		}
		w.derpMap = m
		for _, p := range w.live {
			p.sess.enqueueFull()
		}
		return nil
	})
}
