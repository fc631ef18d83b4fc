package acmedns

import (
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// serveDNS answers one query. Everything but standard queries for one name
// in the zone, class IN, is refused or not implemented.
func (s *Server) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := s.answer(req)
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(max(opt.UDPSize(), dns.MinMsgSize), false)
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(max(opt.UDPSize(), dns.MinMsgSize))
		}
		resp.Truncate(size)
	}
	if err := w.WriteMsg(resp); err != nil {
		s.cfg.Logf("acmedns: writing DNS answer to %s: %v", w.RemoteAddr(), err)
	}
}

// answer builds the response to req.
func (s *Server) answer(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	if req.Opcode != dns.OpcodeQuery {
		return resp.SetRcode(req, dns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return resp.SetRcode(req, dns.RcodeFormatError)
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if (q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY) || !dns.IsSubDomain(s.zone, name) {
		return resp.SetRcode(req, dns.RcodeRefused)
	}
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = false

	s.expireLocked(now)
	soa := s.soaLocked()
	var txts []string
	for v := range s.records[name] {
		txts = append(txts, v)
	}
	exists := name == s.zone || len(txts) > 0 || s.isNSHostLocked(name) || s.hasBelowLocked(name)
	slices.Sort(txts)

	switch {
	case name == s.zone:
		if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
			resp.Answer = append(resp.Answer, soa)
		}
		if q.Qtype == dns.TypeNS || q.Qtype == dns.TypeANY {
			resp.Answer = append(resp.Answer, s.nsRRsLocked()...)
			resp.Extra = append(resp.Extra, s.glueLocked(dns.TypeANY)...)
		}
	case len(txts) > 0:
		if q.Qtype == dns.TypeTXT || q.Qtype == dns.TypeANY {
			for _, v := range txts {
				resp.Answer = append(resp.Answer, &dns.TXT{Hdr: s.hdr(name, dns.TypeTXT), Txt: []string{v}})
			}
		}
	case s.isNSHostLocked(name):
		for _, rr := range s.glueLocked(q.Qtype) {
			if rr.Header().Name == name {
				resp.Answer = append(resp.Answer, rr)
			}
		}
	}
	if len(resp.Answer) == 0 {
		if !exists {
			resp.Rcode = dns.RcodeNameError
		}
		resp.Ns = []dns.RR{soa}
	}
	return resp
}

func (s *Server) hdr(name string, typ uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: uint32(s.cfg.TTL.Seconds())}
}

func (s *Server) soaLocked() *dns.SOA {
	ttl := uint32(s.cfg.TTL.Seconds())
	return &dns.SOA{
		Hdr:     s.hdr(s.zone, dns.TypeSOA),
		Ns:      s.ns[0],
		Mbox:    "hostmaster." + s.zone,
		Serial:  s.serial,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  ttl,
	}
}

func (s *Server) nsRRsLocked() []dns.RR {
	var rrs []dns.RR
	for _, n := range s.ns {
		rrs = append(rrs, &dns.NS{Hdr: s.hdr(s.zone, dns.TypeNS), Ns: n})
	}
	return rrs
}

// isNSHostLocked reports whether name is one of the zone's own name servers.
func (s *Server) isNSHostLocked(name string) bool {
	return slices.Contains(s.ns, name) && dns.IsSubDomain(s.zone, name)
}

// glueLocked returns the A/AAAA records of the in-zone name servers of type typ
// (or both for TypeANY).
func (s *Server) glueLocked(typ uint16) []dns.RR {
	var rrs []dns.RR
	for _, n := range s.ns {
		if !dns.IsSubDomain(s.zone, n) {
			continue
		}
		for _, a := range s.cfg.NSAddrs {
			switch {
			case a.Is4() && (typ == dns.TypeA || typ == dns.TypeANY):
				rrs = append(rrs, &dns.A{Hdr: s.hdr(n, dns.TypeA), A: a.AsSlice()})
			case a.Is6() && !a.Is4In6() && (typ == dns.TypeAAAA || typ == dns.TypeANY):
				rrs = append(rrs, &dns.AAAA{Hdr: s.hdr(n, dns.TypeAAAA), AAAA: a.AsSlice()})
			}
		}
	}
	return rrs
}

// hasBelowLocked reports whether name is an empty non-terminal: some
// record's name is below it (RFC 8020: NODATA, not NXDOMAIN).
func (s *Server) hasBelowLocked(name string) bool {
	for n := range s.records {
		if strings.HasSuffix(n, "."+name) {
			return true
		}
	}
	for _, n := range s.ns {
		if strings.HasSuffix(n, "."+name) && dns.IsSubDomain(s.zone, n) {
			return true
		}
	}
	return false
}
