package control

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIPAllocator(t *testing.T) {
	tests := []struct {
		name     string
		prefix   string
		reserved []string // already taken
		n        int      // addresses to allocate
		want     []string
		wantErr  bool
	}{
		{name: "first-addresses", prefix: "100.64.0.0/10", n: 3, want: []string{"100.64.0.1", "100.64.0.2", "100.64.0.3"}},
		{name: "skips-taken", prefix: "100.64.0.0/10", reserved: []string{"100.64.0.1", "100.64.0.3"}, n: 2,
			want: []string{"100.64.0.2", "100.64.0.4"}},
		{name: "skips-quad100-range", prefix: "100.100.99.254/23", n: 2, want: []string{"100.100.98.1", "100.100.98.2"}},
		{name: "skips-network-and-broadcast", prefix: "100.64.0.0/30", n: 2, want: []string{"100.64.0.1", "100.64.0.2"}},
		{name: "full-range", prefix: "100.64.0.0/30", n: 3, wantErr: true},
		{name: "chromeos-range-is-reserved", prefix: "100.115.92.0/23", n: 1, wantErr: true},
		{name: "ipv6", prefix: "fd7a:115c:a1e0::/48", n: 2, want: []string{"fd7a:115c:a1e0::1", "fd7a:115c:a1e0::2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newIPAllocator(netip.MustParsePrefix(tt.prefix))
			for _, r := range tt.reserved {
				a.reserve(netip.MustParseAddr(r))
			}
			var got []string
			var err error
			for range tt.n {
				var ip netip.Addr
				if ip, err = a.allocate(); err != nil {
					break
				}
				got = append(got, ip.String())
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("allocated (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestIPAllocatorDoesNotReuseEarly(t *testing.T) {
	a := newIPAllocator(netip.MustParsePrefix("100.64.0.0/29")) // .1-.6 usable
	first, _ := a.allocate()
	a.release(first)
	second, _ := a.allocate()
	if second == first {
		t.Errorf("a freed address came back immediately (%v); it should be reused only after the range wraps", first)
	}
}

func TestQuad100NeverAllocated(t *testing.T) {
	a := newIPAllocator(netip.MustParsePrefix("100.100.100.0/22"))
	n := 0
	for {
		ip, err := a.allocate()
		if err != nil {
			break
		}
		n++
		if netip.MustParsePrefix("100.100.100.0/24").Contains(ip) {
			t.Fatalf("allocated reserved address %v", ip)
		}
	}
	// 1024 addresses less the reserved /24 and the broadcast address.
	if n != 1024-256-1 {
		t.Errorf("allocated %d addresses from the /22, want %d", n, 1024-256-1)
	}
}

func TestDNSLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alpha", "alpha"},
		{"Alice's MacBook Pro", "alices-macbook-pro"},
		{"web-1.example.com", "web-1"},
		{"--x--", "x"},
		{"", "node"},
		{"Ünïcödé", "ncd"},
		{string(make([]byte, 100)), "node"},
	}
	for _, tt := range tests {
		if got := dnsLabel(tt.in); got != tt.want {
			t.Errorf("dnsLabel(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUniqueName(t *testing.T) {
	w := &world{names: map[string]*node{}}
	var got []string
	for _, h := range []string{"web", "web", "WEB", "web-2"} {
		name := w.uniqueName(h, nil)
		w.names[name] = &node{}
		got = append(got, name)
	}
	if diff := cmp.Diff([]string{"web", "web-2", "web-3", "web-2-2"}, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
}
