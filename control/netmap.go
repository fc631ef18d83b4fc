package control

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
	"tailscale.com/types/dnstype"
	"tailscale.com/types/opt"
)

// taggedUserID is the user that owns every tagged node in netmaps.
const taggedUserID tailcfg.UserID = 2147455555

// userID derives a stable user ID from a login, so IDs need no table and
// survive restarts and config reloads.
func userID(login string) tailcfg.UserID {
	h := sha256.Sum256([]byte("tailplane-user:" + login))
	// 2^40 values keeps IDs positive and well clear of taggedUserID collisions in practice.
	return tailcfg.UserID(binary.BigEndian.Uint64(h[:8])>>24) + 1<<32
}

func (n *node) userID() tailcfg.UserID {
	if n.tagged() {
		return taggedUserID
	}
	return userID(n.userLogin)
}

// userProfiles builds the profile of every declared user plus the tagged
// pseudo-user. The result is shared read-only by all sessions.
func userProfiles(t *schema.Tailnet) map[tailcfg.UserID]tailcfg.UserProfile {
	m := map[tailcfg.UserID]tailcfg.UserProfile{
		taggedUserID: {ID: taggedUserID, LoginName: "tagged-devices", DisplayName: "Tagged Devices"},
	}
	for login, u := range t.Users {
		m[userID(login)] = userProfile(login, u)
	}
	return m
}

func userProfile(login string, u schema.User) tailcfg.UserProfile {
	name := u.Name
	if name == "" {
		name, _, _ = strings.Cut(login, "@")
	}
	return tailcfg.UserProfile{ID: userID(login), LoginName: login, DisplayName: name}
}

func (n *node) addresses() []netip.Prefix {
	var a []netip.Prefix
	if n.v4.IsValid() {
		a = append(a, netip.PrefixFrom(n.v4, 32))
	}
	if n.v6.IsValid() {
		a = append(a, netip.PrefixFrom(n.v6, 128))
	}
	return a
}

// nodeView builds the tailcfg.Node peers (and the node itself) see.
func (w *world) nodeView(n *node) *tailcfg.Node {
	allowed, primary := w.pol.Routes(n)
	online := n.online
	v := &tailcfg.Node{
		ID:                n.id,
		StableID:          n.stableID,
		Name:              n.givenName + "." + w.settings.Domain + ".",
		User:              n.userID(),
		Key:               n.nodeKey,
		KeyExpiry:         n.keyExpiry,
		Machine:           n.machine,
		DiscoKey:          n.disco,
		Addresses:         n.addresses(),
		AllowedIPs:        allowed,
		Endpoints:         n.endpoints,
		HomeDERP:          n.homeDERP,
		Hostinfo:          n.hostinfo.View(),
		Created:           n.createdAt,
		Cap:               n.capVer,
		Tags:              n.tags,
		PrimaryRoutes:     primary,
		Online:            &online,
		MachineAuthorized: !n.pending,
		CapMap:            w.pol.CapMap(n),
		Expired:           !n.keyExpiry.IsZero() && n.keyExpiry.Before(w.srv.now()),
	}
	if v.Expired {
		// Peers must not reach an expired node: no paths to it.
		v.Endpoints, v.HomeDERP = nil, 0
	}
	if v.HomeDERP != 0 {
		v.LegacyDERPString = fmt.Sprintf("%s:%d", tailcfg.DerpMagicIP, v.HomeDERP)
	}
	if !online && !n.lastSeen.IsZero() {
		ls := n.lastSeen
		v.LastSeen = &ls
	}
	return v
}

// filterMessage encodes f as a complete replacement of the client's packet
// filter. An empty f denies all inbound traffic (an empty PacketFilter
// would be dropped by omitempty and mean "no change").
func filterMessage(f []tailcfg.FilterRule) map[string][]tailcfg.FilterRule {
	m := map[string][]tailcfg.FilterRule{"*": nil}
	if len(f) > 0 {
		m["base"] = f
	}
	return m
}

// sshMessage encodes p as a complete replacement of the client's SSH
// policy: no rules is an empty policy, since a nil one means "no change".
func sshMessage(p *tailcfg.SSHPolicy) *tailcfg.SSHPolicy {
	if p == nil {
		return &tailcfg.SSHPolicy{}
	}
	return p
}

// netmapBase is what every full netmap carries besides the node's own
// parts and peers; immutable, published with the config (see publish).
type netmapBase struct {
	derpMap *tailcfg.DERPMap
	dns     *tailcfg.DNSConfig
	domain  string
	https   bool // dns.https: each node's own view and DNS config name its certificate (see setdns.go)
}

// fullMap builds p's complete netmap from the current state and resets its
// session's queue, since the full map supersedes anything queued. Owner
// goroutine; a stream's netmaps are built off it instead (snapshotMap).
func (w *world) fullMap(p *node, forSession bool) *tailcfg.MapResponse {
	now := w.srv.now()
	if w.keyExpired(p, now) {
		return w.expiredMap(p, forSession)
	}
	f := w.pol.Filter(p)
	base := &netmapBase{derpMap: w.derpMap, dns: w.selfDNS(p), domain: w.settings.Domain}
	resp := newFullMap(p.self, base, f, sshMessage(w.pol.SSHPolicy(p)), now)
	peers := make([]*tailcfg.Node, 0, w.pol.PeerCount(p))
	w.pol.EachPeer(p, func(id tailcfg.NodeID) {
		if n := w.nodes[id]; n != nil && n != p && w.visible(n) {
			peers = append(peers, n.view)
		}
	})
	addPeers(resp, peers, *w.profiles, func() []tailcfg.NodeID { return slices.Collect(maps.Keys(w.nodes)) })
	if forSession && p.sess != nil {
		p.sess.resetForFull(f, resp.SSHPolicy)
	}
	return resp
}

// snapshotMap builds node id's full netmap for sess off the owner
// goroutine, from what the owner published: the policy result, the
// config and every node's current view (viewCache). The caller has reset
// sess's queue on the owner goroutine first (resetForFull), so whatever
// changed since is both in the published state read here and queued
// after it; deltas carry absolute values, so one applied twice is
// harmless. It returns nil for a node removed meanwhile. Callers hold
// one of fullMapSlots (see mapWriter.writeFull).
func (s *Server) snapshotMap(sess *session, id tailcfg.NodeID) *tailcfg.MapResponse {
	self := s.views.current(id)
	res, base, profiles := s.policyRes.Load(), s.netmap.Load(), s.profiles.Load()
	if self == nil || res == nil || base == nil || profiles == nil {
		return nil // removed meanwhile
	}
	var f []tailcfg.FilterRule
	var ssh *tailcfg.SSHPolicy
	var peers []*tailcfg.Node
	if v := res.Node(id); v != nil { // nil: not in the inventory (pending approval)
		f, ssh = v.PacketFilter, v.SSH
		peers = s.views.currentOf(v.Peers, id)
	}
	if base.https {
		self = selfViewOf(self)
		base = &netmapBase{derpMap: base.derpMap, dns: dnsWithCert(base.dns, certDomainOf(self)), domain: base.domain}
	}
	resp := newFullMap(self, base, f, sshMessage(ssh), s.now())
	addPeers(resp, peers, *profiles, s.views.ids)
	sess.setSent(f, resp.SSHPolicy)
	sess.held.reset()
	for _, p := range peers {
		sess.held.add(p.ID)
	}
	return resp
}

// fullMapSlots bounds the full netmaps built and encoded at once off the
// owner goroutine (snapshotMap, encodeFrame): enough to keep the cores
// busy, few enough that a storm's netmaps (a megabyte of JSON each at a
// few thousand peers, and a zstd encoder's buffers) are not all in memory
// at once. A reconnect storm waits for them, not for the owner.
var fullMapSlots = make(chan struct{}, max(4, 2*runtime.GOMAXPROCS(0)))

// newFullMap is a full netmap of self without its peers.
func newFullMap(self *tailcfg.Node, base *netmapBase, f []tailcfg.FilterRule, ssh *tailcfg.SSHPolicy, now time.Time) *tailcfg.MapResponse {
	return &tailcfg.MapResponse{
		Node:            self,
		DERPMap:         base.derpMap,
		DNSConfig:       base.dns,
		Domain:          base.domain,
		CollectServices: opt.False,
		PacketFilters:   filterMessage(f),
		SSHPolicy:       ssh,
		ControlTime:     &now,
	}
}

// addPeers puts peers (sorted by ID) and their users' profiles into
// resp. No peers at all is said by naming every other node (of all) as
// removed: an empty Peers list means "no change", and a client that had
// peers must drop them.
func addPeers(resp *tailcfg.MapResponse, peers []*tailcfg.Node, profiles map[tailcfg.UserID]tailcfg.UserProfile, all func() []tailcfg.NodeID) {
	seen := map[tailcfg.UserID]bool{}
	addProfile := func(id tailcfg.UserID) {
		if seen[id] {
			return
		}
		seen[id] = true
		if up, ok := profiles[id]; ok {
			resp.UserProfiles = append(resp.UserProfiles, up)
		} else {
			resp.UserProfiles = append(resp.UserProfiles, tailcfg.UserProfile{ID: id, LoginName: fmt.Sprintf("user-%d", id)})
		}
	}
	addProfile(resp.Node.User)
	resp.Peers = peers
	for _, n := range peers {
		addProfile(n.User)
	}
	if len(peers) == 0 {
		for _, id := range all() {
			if id != resp.Node.ID {
				resp.PeersRemoved = append(resp.PeersRemoved, id)
			}
		}
		slices.Sort(resp.PeersRemoved)
	}
}

// deltaMap turns drained session changes into one MapResponse. It runs on
// the session goroutine and reads only immutable views.
func (s *Server) deltaMap(d pendingDelta) *tailcfg.MapResponse {
	resp := &tailcfg.MapResponse{}
	resp.Node = d.selfView
	profiles := s.profiles.Load()
	seen := map[tailcfg.UserID]bool{}
	for _, v := range d.changed {
		resp.PeersChanged = append(resp.PeersChanged, v)
		if !seen[v.User] {
			seen[v.User] = true
			if up, ok := (*profiles)[v.User]; ok {
				resp.UserProfiles = append(resp.UserProfiles, up)
			}
		}
	}
	slices.SortFunc(resp.PeersChanged, func(a, b *tailcfg.Node) int { return int(a.ID - b.ID) })
	for _, pc := range d.patches {
		resp.PeersChangedPatch = append(resp.PeersChangedPatch, pc)
	}
	slices.SortFunc(resp.PeersChangedPatch, func(a, b *tailcfg.PeerChange) int { return int(a.NodeID - b.NodeID) })
	for id := range d.removed {
		resp.PeersRemoved = append(resp.PeersRemoved, id)
	}
	slices.Sort(resp.PeersRemoved)
	if d.filterSet {
		resp.PacketFilters = filterMessage(d.filter)
	}
	for _, up := range d.profiles {
		if !seen[up.ID] {
			seen[up.ID] = true
			resp.UserProfiles = append(resp.UserProfiles, up)
		}
	}
	resp.DERPMap, resp.DNSConfig = d.derpMap, d.dns
	resp.SSHPolicy = d.ssh
	resp.PingRequest = d.ping
	return resp
}

// dnsConfig derives the DNS settings every node gets; domain is the
// MagicDNS domain, its default filled in.
func dnsConfig(t *schema.Tailnet, domain string) *tailcfg.DNSConfig {
	c := &tailcfg.DNSConfig{Proxied: t.DNS.MagicDNS}
	for _, ns := range t.DNS.Nameservers {
		c.Resolvers = append(c.Resolvers, &dnstype.Resolver{Addr: ns.String()})
	}
	for suffix, addrs := range t.DNS.SplitDNS {
		if c.Routes == nil {
			c.Routes = map[string][]*dnstype.Resolver{}
		}
		var rs []*dnstype.Resolver
		for _, a := range addrs {
			rs = append(rs, &dnstype.Resolver{Addr: a.String()})
		}
		c.Routes[suffix] = rs
	}
	if t.DNS.MagicDNS {
		c.Domains = append(c.Domains, domain)
	}
	c.Domains = append(c.Domains, t.DNS.SearchDomains...)
	for _, r := range t.DNS.Records {
		c.ExtraRecords = append(c.ExtraRecords, tailcfg.DNSRecord{Name: r.Name, Type: r.Type, Value: r.Value.String()})
	}
	return c
}

// defaultKeepAlive is how often an idle map stream gets a keep-alive;
// clients give up after 120 s of silence.
const defaultKeepAlive = 50 * time.Second
