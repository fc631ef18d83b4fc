package control

import (
	"fmt"
	"net/netip"
)

// reservedV4 are addresses inside the CGNAT range that Tailscale clients
// treat specially and that no node may get.
var reservedV4 = []netip.Prefix{
	netip.MustParsePrefix("100.100.100.0/24"), // 100.100.100.100 (Quad100) and neighbours
	netip.MustParsePrefix("100.115.92.0/23"),  // used by ChromeOS/Android VMs
}

// ipAllocator hands out node addresses from one prefix. Addresses are
// never reused while a node holds them; the cursor moves forward and wraps,
// so freed addresses are reused only after the whole range was handed out.
type ipAllocator struct {
	prefix netip.Prefix
	used   map[netip.Addr]bool
	next   netip.Addr // where the next search starts
}

func newIPAllocator(p netip.Prefix) *ipAllocator {
	p = p.Masked()
	return &ipAllocator{prefix: p, used: map[netip.Addr]bool{}, next: p.Addr().Next()}
}

// reserve marks a as taken (for addresses loaded from the store).
func (a *ipAllocator) reserve(ip netip.Addr) {
	if ip.IsValid() {
		a.used[ip] = true
	}
}

// release frees ip once its node is gone.
func (a *ipAllocator) release(ip netip.Addr) { delete(a.used, ip) }

// usable reports whether ip may be given to a node.
func (a *ipAllocator) usable(ip netip.Addr) bool {
	if !a.prefix.Contains(ip) || ip == a.prefix.Addr() || a.used[ip] {
		return false
	}
	if ip.Is4() {
		if isLastInPrefix(a.prefix, ip) { // broadcast
			return false
		}
		for _, r := range reservedV4 {
			if r.Contains(ip) {
				return false
			}
		}
	}
	return true
}

// allocate returns a free address and marks it used.
func (a *ipAllocator) allocate() (netip.Addr, error) {
	// The search is bounded: a full cycle through a /10 is 4M steps, and the
	// cursor makes the common case (no wrap-around yet) O(1).
	start := a.next
	ip := start
	for {
		if a.usable(ip) {
			a.used[ip] = true
			a.next = ip.Next()
			return ip, nil
		}
		ip = ip.Next()
		if !ip.IsValid() || !a.prefix.Contains(ip) {
			ip = a.prefix.Addr().Next()
		}
		if ip == start {
			return netip.Addr{}, fmt.Errorf("address range %s is full (%d nodes); widen tailnet.ipv4/ipv6", a.prefix, len(a.used))
		}
	}
}

func isLastInPrefix(p netip.Prefix, ip netip.Addr) bool {
	n := ip.Next()
	return !n.IsValid() || !p.Contains(n)
}
