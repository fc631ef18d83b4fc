package policy

import (
	"fmt"
	"strconv"
	"strings"

	"tailscale.com/tailcfg"
	"tailscale.com/types/ipproto"
)

// portAny is the whole port range, written "*".
var portAny = tailcfg.PortRange{First: 0, Last: 65535}

// parseProto parses an ACL's or test's "proto": a protocol name Tailscale
// accepts ("tcp", "udp", "icmp", "ipv6-icmp", "sctp", ...) or a number in
// 0-255. The empty string means the default set (TCP, UDP, ICMP),
// returned as nil.
func parseProto(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var p ipproto.Proto
	if err := p.UnmarshalText([]byte(s)); err != nil {
		return nil, fmt.Errorf("proto %q is not a protocol name or a number in 0-255", s)
	}
	return []int{int(p)}, nil
}

// parsePorts parses a port list such as "*", "22", "80-443" or "22,80,443".
func parsePorts(s string) ([]tailcfg.PortRange, error) {
	if s == "*" {
		return []tailcfg.PortRange{portAny}, nil
	}
	if s == "" {
		return nil, fmt.Errorf("port list must not be empty")
	}
	var out []tailcfg.PortRange
	for _, part := range strings.Split(s, ",") {
		if part == "*" {
			out = append(out, portAny)
			continue
		}
		first, last, isRange := strings.Cut(part, "-")
		f, err := parsePort(first)
		if err != nil {
			return nil, fmt.Errorf("port range %q: invalid first integer", part)
		}
		l := f
		if isRange {
			if l, err = parsePort(last); err != nil {
				return nil, fmt.Errorf("port range %q: invalid last integer", part)
			}
		}
		if f == 0 {
			return nil, fmt.Errorf("port range %q: first port must be >0, or use '*' for wildcard", part)
		}
		if l < f {
			return nil, fmt.Errorf("port range %q: last port is smaller than the first", part)
		}
		out = append(out, tailcfg.PortRange{First: f, Last: l})
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" || !isDigits(s) {
		return 0, fmt.Errorf("not a number")
	}
	n, err := strconv.ParseUint(s, 10, 16)
	return uint16(n), err
}

// splitAliasPorts splits a destination "alias:ports" at its last colon.
// IPv6 addresses may be bracketed: "[fd7a::1]:22".
func splitAliasPorts(s string) (host, ports string, err error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", fmt.Errorf("destination %q has no port list; write %q or %q", s, s+":*", s+":22")
	}
	host, ports = s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return host, ports, nil
}

// protoPorts is one entry of a grant's "ip" list: a protocol (nil for the
// default set) and its ports.
type protoPorts struct {
	protos []int
	ports  []tailcfg.PortRange
}

// parseGrantIP parses a grant "ip" entry with Tailscale's own parser:
// "*", "22", "80-443", "tcp:443", "udp:*", "icmp:*" or "6:22".
func parseGrantIP(s string) (protoPorts, error) {
	prs, err := tailcfg.ParseProtoPortRanges([]string{s})
	if err != nil {
		return protoPorts{}, err
	}
	pp := protoPorts{ports: []tailcfg.PortRange{prs[0].Ports}}
	if prs[0].Proto != 0 {
		pp.protos = []int{prs[0].Proto}
	}
	return pp, nil
}
