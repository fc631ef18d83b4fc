package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
)

// frameInfo is all the load generator takes from one map message (a
// tailcfg.MapResponse): what apply folds into a node's measurements.
type frameInfo struct {
	keepAlive  bool
	selfID     int64   // Node.ID; 0 without Node
	peers      []int64 // IDs of Peers, in order (0 for a null entry)
	changed    []int64 // IDs of PeersChanged
	removed    []int64 // PeersRemoved
	probePort  int32   // port of the probe's first endpoint as the message leaves it; -1 if it does not say
	hasFilters bool    // PacketFilters present (not null)
	filterRev  int     // filterRev of PacketFilters
	homePort   int32   // DERPMap: the relay port of the first node of its lowest region (a replica's own relay); -1 without a DERPMap
	// online: what Peers, PeersChanged and PeersChangedPatch (in this
	// order) say of peers' Online, each in its list's order
	online [3][]onlineMark
}

// onlineMark is one peer's Online in a map message: the peer's ID (its
// NodeID when it has no ID, as in PeersChangedPatch).
type onlineMark struct {
	id int64
	on bool
}

// derpHome returns the relay port a DERP map (raw JSON) lists first: of
// the lowest region with nodes, its first node's. Each replica lists its
// own relay first (docs/deploy.md), so this tells a node's replica. -1:
// no such node.
func derpHome(raw []byte) (int32, error) {
	var m *struct {
		Regions map[int]*struct{ Nodes []struct{ DERPPort int } }
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return -1, fmt.Errorf("the DERP map: %w", err)
	}
	home, region := int32(-1), 0
	if m == nil {
		return home, nil
	}
	for id, r := range m.Regions {
		if r != nil && len(r.Nodes) > 0 && (home < 0 || id < region) {
			home, region = int32(r.Nodes[0].DERPPort), id
		}
	}
	return home, nil
}

// mapScanner reads frameInfo out of a map message's JSON without decoding
// the rest: a full netmap of a 1,000-node mesh is ~600 KB of peers of
// which only the IDs matter (and the probe's endpoints). It skips every
// other value without validating it (the server's JSON is trusted to be
// well formed) but checks the type of every value it reads, and matches
// field names as encoding/json does (exact, else case-folded). One
// scanner serves one frame at a time; its slices are reused.
type mapScanner struct {
	b     []byte
	i     int
	probe int64
	info  frameInfo
	// the probe's port per list, -1 while unknown, combined in the order
	// apply reads the lists: Peers, PeersChanged, PeersChangedPatch
	probePorts [3]int32
}

var (
	fKeepAlive    = []byte("KeepAlive")
	fNode         = []byte("Node")
	fID           = []byte("ID")
	fNodeID       = []byte("NodeID")
	fEndpoints    = []byte("Endpoints")
	fOnline       = []byte("Online")
	fPeers        = []byte("Peers")
	fChanged      = []byte("PeersChanged")
	fRemoved      = []byte("PeersRemoved")
	fPatch        = []byte("PeersChangedPatch")
	fFilters      = []byte("PacketFilters")
	fDERPMap      = []byte("DERPMap")
	fDstPorts     = []byte("DstPorts")
	fPorts        = []byte("Ports")
	fFirst, fLast = []byte("First"), []byte("Last")
)

// scan parses one map message; probe is the probe node's ID (0: none yet).
// The result is valid until the next scan.
func (s *mapScanner) scan(b []byte, probe int64) (*frameInfo, error) {
	s.b, s.i, s.probe = b, 0, probe
	s.info = frameInfo{peers: s.info.peers[:0], changed: s.info.changed[:0], removed: s.info.removed[:0], homePort: -1,
		online: [3][]onlineMark{s.info.online[0][:0], s.info.online[1][:0], s.info.online[2][:0]}}
	s.probePorts = [3]int32{-1, -1, -1}
	if s.null() {
		s.info.probePort = -1
		return &s.info, nil
	}
	err := s.object(s.topField)
	s.info.probePort = -1
	for _, p := range s.probePorts {
		if p >= 0 {
			s.info.probePort = p
		}
	}
	s.b = nil
	if err != nil {
		return nil, err
	}
	return &s.info, nil
}

func (s *mapScanner) topField(k []byte) error {
	switch {
	case fieldIs(k, fKeepAlive):
		return s.boolInto(&s.info.keepAlive)
	case fieldIs(k, fNode):
		s.info.selfID = 0
		if s.null() {
			return nil
		}
		return s.object(func(k []byte) error {
			if fieldIs(k, fID) {
				return s.intInto(&s.info.selfID)
			}
			return s.skip()
		})
	case fieldIs(k, fPeers):
		s.info.peers = s.info.peers[:0]
		return s.peerList(&s.info.peers, 0)
	case fieldIs(k, fChanged):
		s.info.changed = s.info.changed[:0]
		return s.peerList(&s.info.changed, 1)
	case fieldIs(k, fPatch):
		return s.peerList(nil, 2)
	case fieldIs(k, fRemoved):
		s.info.removed = s.info.removed[:0]
		if s.null() {
			return nil
		}
		return s.array(func() error {
			var id int64
			err := s.intInto(&id)
			s.info.removed = append(s.info.removed, id)
			return err
		})
	case fieldIs(k, fDERPMap):
		start := s.i
		if err := s.skip(); err != nil {
			return err
		}
		var err error
		s.info.homePort, err = derpHome(s.b[start:s.i])
		return err
	case fieldIs(k, fFilters):
		s.info.hasFilters, s.info.filterRev = false, 0
		if s.null() {
			return nil
		}
		s.info.hasFilters = true
		return s.object(func([]byte) error { return s.filterRules() })
	}
	return s.skip()
}

// peerList reads a list of peers (tailcfg.Node or PeerChange objects),
// appending their IDs to ids (unless nil) and noting the probe's endpoint
// as list number which.
func (s *mapScanner) peerList(ids *[]int64, which int) error {
	s.probePorts[which] = -1
	s.info.online[which] = s.info.online[which][:0]
	if s.null() {
		return nil
	}
	return s.array(func() error {
		var id, nodeID int64
		var eps []byte // the raw Endpoints value
		var online, hasOnline bool
		if !s.null() {
			err := s.object(func(k []byte) error {
				switch {
				case fieldIs(k, fID):
					return s.intInto(&id)
				case fieldIs(k, fNodeID):
					return s.intInto(&nodeID)
				case fieldIs(k, fOnline):
					hasOnline = !s.null()
					if !hasOnline {
						return nil
					}
					return s.boolInto(&online)
				case fieldIs(k, fEndpoints):
					start := s.i
					err := s.skip()
					eps = s.b[start:s.i]
					return err
				}
				return s.skip()
			})
			if err != nil {
				return err
			}
		}
		if ids != nil {
			*ids = append(*ids, id)
		}
		if hasOnline {
			mark := onlineMark{id, online}
			if id == 0 {
				mark.id = nodeID
			}
			s.info.online[which] = append(s.info.online[which], mark)
		}
		if s.probe > 0 && (id == s.probe || nodeID == s.probe) && eps != nil {
			var list []netip.AddrPort
			if err := json.Unmarshal(eps, &list); err != nil {
				return fmt.Errorf("the probe's endpoints: %w", err)
			}
			if len(list) > 0 {
				s.probePorts[which] = int32(list[0].Port())
			}
		}
		return nil
	})
}

// filterRules reads one PacketFilters entry and raises filterRev to the
// revision its rules carry.
func (s *mapScanner) filterRules() error {
	if s.null() {
		return nil
	}
	return s.array(func() error {
		if s.null() {
			return nil
		}
		return s.object(func(k []byte) error {
			if !fieldIs(k, fDstPorts) {
				return s.skip()
			}
			if s.null() {
				return nil
			}
			return s.array(func() error {
				var first, last uint16
				if !s.null() {
					if err := s.object(func(k []byte) error {
						if !fieldIs(k, fPorts) {
							return s.skip()
						}
						if s.null() {
							return nil
						}
						return s.object(func(k []byte) error {
							switch {
							case fieldIs(k, fFirst):
								return s.portInto(&first)
							case fieldIs(k, fLast):
								return s.portInto(&last)
							}
							return s.skip()
						})
					}); err != nil {
						return err
					}
				}
				if p := int(first); first == last && p > markerBase && p < markerBase+1000 {
					s.info.filterRev = max(s.info.filterRev, p-markerBase)
				}
				return nil
			})
		})
	})
}

// fieldIs matches a field name as encoding/json does.
func fieldIs(key, name []byte) bool { return bytes.Equal(key, name) || bytes.EqualFold(key, name) }

func (s *mapScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("map message at byte %d: %s", s.i, fmt.Sprintf(format, args...))
}

func (s *mapScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// null consumes a null if one comes next.
func (s *mapScanner) null() bool {
	s.ws()
	if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// object reads an object, calling field with each (unquoted) name, with
// the scanner at the value, which field must consume.
func (s *mapScanner) object(field func(k []byte) error) error {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.errorf("want an object")
	}
	s.i++
	for n := 0; ; n++ {
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == '}' && n == 0 {
			s.i++
			return nil
		}
		k, err := s.key()
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.errorf("want a colon")
		}
		s.i++
		if err := field(k); err != nil {
			return err
		}
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ',' {
			s.i++
			continue
		}
		if s.i < len(s.b) && s.b[s.i] == '}' {
			s.i++
			return nil
		}
		return s.errorf("want a comma or the end of an object")
	}
}

// array reads an array, calling elem with the scanner at each element.
func (s *mapScanner) array(elem func() error) error {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '[' {
		return s.errorf("want an array")
	}
	s.i++
	for n := 0; ; n++ {
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ']' && n == 0 {
			s.i++
			return nil
		}
		if err := elem(); err != nil {
			return err
		}
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ',' {
			s.i++
			continue
		}
		if s.i < len(s.b) && s.b[s.i] == ']' {
			s.i++
			return nil
		}
		return s.errorf("want a comma or the end of an array")
	}
}

// key reads an object's field name; one with escapes is unquoted.
func (s *mapScanner) key() ([]byte, error) {
	start := s.i
	if err := s.skipString(); err != nil {
		return nil, err
	}
	raw := s.b[start+1 : s.i-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw, nil
	}
	var k string
	if err := json.Unmarshal(s.b[start:s.i], &k); err != nil {
		return nil, s.errorf("field name: %v", err)
	}
	return []byte(k), nil
}

// skipString moves past the string starting at the scanner.
func (s *mapScanner) skipString() error {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return s.errorf("want a string")
	}
	i := s.i + 1
	for {
		j := bytes.IndexByte(s.b[i:], '"')
		if j < 0 {
			return s.errorf("unterminated string")
		}
		i += j
		bs := 0
		for k := i - 1; k > s.i && s.b[k] == '\\'; k-- {
			bs++
		}
		i++
		if bs%2 == 0 {
			s.i = i
			return nil
		}
	}
}

// skip moves past one value of any kind.
func (s *mapScanner) skip() error {
	s.ws()
	if s.i >= len(s.b) {
		return s.errorf("want a value")
	}
	switch s.b[s.i] {
	case '"':
		return s.skipString()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if err := s.skipString(); err != nil {
					return err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return nil
				}
			}
			s.i++
		}
		return s.errorf("unterminated object or array")
	}
	s.token()
	return nil
}

// token returns the literal (number, true, false, null) at the scanner.
func (s *mapScanner) token() []byte {
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r', ':', '"', '{', '[':
			return s.b[start:s.i]
		}
		s.i++
	}
	return s.b[start:s.i]
}

// intInto reads an integer into v; null leaves v as it is.
func (s *mapScanner) intInto(v *int64) error {
	if s.null() {
		return nil
	}
	t := s.token()
	n, err := strconv.ParseInt(string(t), 10, 64)
	if err != nil {
		return s.errorf("want an integer, not %.40q", t)
	}
	*v = n
	return nil
}

// portInto reads a uint16 into v; null leaves v as it is.
func (s *mapScanner) portInto(v *uint16) error {
	if s.null() {
		return nil
	}
	t := s.token()
	n, err := strconv.ParseUint(string(t), 10, 16)
	if err != nil {
		return s.errorf("want a port number, not %.40q", t)
	}
	*v = uint16(n)
	return nil
}

// boolInto reads a boolean into v; null leaves v as it is.
func (s *mapScanner) boolInto(v *bool) error {
	if s.null() {
		return nil
	}
	switch t := s.token(); string(t) {
	case "true":
		*v = true
	case "false":
		*v = false
	default:
		return s.errorf("want true or false, not %.40q", t)
	}
	return nil
}
