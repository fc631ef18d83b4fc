package policy

import (
	"fmt"
	"strconv"
	"strings"

	"tailscale.com/tailcfg"
)

// portAny is the whole port range, written "*".
var portAny = tailcfg.PortRange{First: 0, Last: 65535}

// protoNames maps the protocol names Tailscale accepts to IANA numbers.
var protoNames = map[string]int{
	"icmp": 1, "igmp": 2, "ipv4": 4, "ip-in-ip": 4, "tcp": 6, "egp": 8, "igp": 9,
	"udp": 17, "gre": 47, "esp": 50, "ah": 51, "ipv6-icmp": 58, "sctp": 132,
}

// protoHasPorts reports whether a protocol carries port numbers, so that
// rules for it may name ports other than "*".
func protoHasPorts(p int) bool { return p == 6 || p == 17 || p == 132 }

// parseProto parses an ACL's "proto" (a name or a number 0-255). The empty
// string means the default set (TCP, UDP, ICMP), returned as nil.
func parseProto(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	if n, ok := protoNames[strings.ToLower(s)]; ok {
		return []int{n}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 255 {
		return nil, fmt.Errorf("proto %q is not a protocol name or a number in 0-255", s)
	}
	return []int{n}, nil
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

// parseGrantIP parses a grant "ip" entry: "*", "22", "80-443", "tcp:443",
// "udp:*", "icmp:*" or "6:22".
func parseGrantIP(s string) (protoPorts, error) {
	if s == "*" {
		return protoPorts{ports: []tailcfg.PortRange{portAny}}, nil
	}
	proto, ports, hasProto := strings.Cut(s, ":")
	if !hasProto {
		ps, err := parsePorts(s)
		return protoPorts{ports: ps}, err
	}
	pr, err := parseProto(proto)
	if err != nil {
		return protoPorts{}, err
	}
	if pr == nil {
		return protoPorts{}, fmt.Errorf("%q: protocol must not be empty", s)
	}
	ps, err := parsePorts(ports)
	if err != nil {
		return protoPorts{}, err
	}
	if !protoHasPorts(pr[0]) && (len(ps) != 1 || ps[0] != portAny) {
		return protoPorts{}, fmt.Errorf("%q: protocol %s has no ports; use %q", s, proto, proto+":*")
	}
	return protoPorts{protos: pr, ports: ps}, nil
}
