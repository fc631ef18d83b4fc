package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"tailscale.com/tailcfg"
)

// ParseDERPMap decodes the policy's `derpMap` key (Tailscale's
// tailcfg.DERPMap JSON). An empty raw value gives a nil map. A region
// written as null means "remove this region from the server's map".
func ParseDERPMap(raw json.RawMessage) (*tailcfg.DERPMap, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m tailcfg.DERPMap
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

// derpMap checks the policy's `derpMap` key: it must decode as a DERP map,
// and each region needs a matching RegionID and at least one node with a
// host name or address.
func (d *decoder) derpMap(raw json.RawMessage) {
	const path = "derpMap"
	m, err := ParseDERPMap(raw)
	if err != nil {
		d.errorf(path, `write Tailscale's DERP map form: {"Regions": {"900": {"RegionID": 900, "RegionCode": "...", "Nodes": [{"Name": "1", "RegionID": 900, "HostName": "derp.example.com"}]}}}`,
			"invalid derpMap: %v", err)
		return
	}
	if m == nil {
		return
	}
	ids := make([]int, 0, len(m.Regions))
	for id := range m.Regions {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		r := m.Regions[id]
		rpath := PathKey(PathKey(path, "Regions"), strconv.Itoa(id))
		if r == nil {
			continue // removes the region
		}
		if r.RegionID != id {
			d.errorf(PathKey(rpath, "RegionID"), fmt.Sprintf("set \"RegionID\": %d", id), "region %d has RegionID %d; they must match", id, r.RegionID)
		}
		if len(r.Nodes) == 0 {
			d.errorf(rpath, `add at least one node: "Nodes": [{"Name": "1", "RegionID": ..., "HostName": "derp.example.com"}]`, "region %d has no nodes", id)
		}
		for i, n := range r.Nodes {
			npath := PathIndex(PathKey(rpath, "Nodes"), i)
			if n == nil {
				d.errorf(npath, "", "region %d: node must not be null", id)
				continue
			}
			if n.Name == "" {
				d.errorf(npath, `give each node a unique "Name" such as "900a"`, "region %d: node %d has no Name", id, i)
			}
			if n.RegionID != id {
				d.errorf(PathKey(npath, "RegionID"), fmt.Sprintf("set \"RegionID\": %d", id), "region %d: node %q has RegionID %d", id, n.Name, n.RegionID)
			}
			if n.HostName == "" && n.IPv4 == "" && n.IPv6 == "" {
				d.errorf(npath, `set "HostName" (the relay's DNS name), or "IPv4"/"IPv6"`, "region %d: node %q has no address", id, n.Name)
			}
		}
	}
}
