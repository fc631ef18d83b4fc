package control

import (
	"encoding/json"
	"fmt"
	"maps"

	"tailscale.com/tailcfg"

	"github.com/tailplane/tailplane/schema"
)

// effectiveDERPMap is the DERP map handed to clients: the server's own map
// (the embedded relay, or --derp-map) with the policy's `derpMap` applied
// as Tailscale does: its regions are added, replacing a region with the same
// ID; a region given as null removes it; OmitDefaultRegions drops the
// server's regions altogether. base is never modified.
func effectiveDERPMap(base *tailcfg.DERPMap, policyMap json.RawMessage) (*tailcfg.DERPMap, error) {
	pm, err := schema.ParseDERPMap(policyMap)
	if err != nil {
		return nil, fmt.Errorf("control: the policy's derpMap: %w", err)
	}
	if pm == nil {
		return base, nil
	}
	out := &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{}, HomeParams: base.HomeParams}
	if !pm.OmitDefaultRegions {
		maps.Copy(out.Regions, base.Regions)
	}
	if pm.HomeParams != nil {
		out.HomeParams = pm.HomeParams
	}
	for id, r := range pm.Regions {
		if r == nil {
			delete(out.Regions, id)
		} else {
			out.Regions[id] = r
		}
	}
	return out, nil
}
