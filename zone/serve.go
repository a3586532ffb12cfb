package zone

import (
	"net"
	"strings"

	"github.com/miekg/dns"
)

// maxUDPSize caps the EDNS(0) payload size this server advertises and uses
// over UDP: 1232 bytes avoids IP fragmentation (DNS flag day 2020). Larger
// answers get TC and the client retries over TCP.
const maxUDPSize = 1232

var _ dns.Handler = (*Server)(nil)

// ServeDNS answers one query. It is the dns.Handler used by Start and may be
// mounted on another miekg/dns server.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if r == nil || r.Response {
		return // never answer answers (avoids reflection loops)
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = false
	opt, ok := s.ednsReply(r, m)
	switch {
	case !ok:
		// BADVERS already set by ednsReply (RFC 6891 6.1.3).
	case r.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
	case len(r.Question) != 1:
		m.Rcode = dns.RcodeFormatError
	default:
		q := r.Question[0]
		if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
			if s.transferOut(w, r, m, opt) {
				return
			}
			break
		}
		s.answer(m, q)
	}
	s.write(w, m, opt)
}

// ednsReply adds an OPT record to m when r has one (RFC 6891 6.1.1),
// advertising maxUDPSize and echoing the DO bit (RFC 3225 3). It returns the
// request's OPT (nil without EDNS) and false for an unsupported EDNS version,
// having set BADVERS.
func (s *Server) ednsReply(r, m *dns.Msg) (*dns.OPT, bool) {
	opt := r.IsEdns0()
	if opt == nil {
		return nil, true
	}
	m.SetEdns0(maxUDPSize, opt.Do())
	if opt.Version() != 0 {
		m.Rcode = dns.RcodeBadVers // extended rcode, carried by the OPT record
		return opt, false
	}
	return opt, true
}

// answer fills m for a standard query (RFC 1034 4.3.2, without CNAMEs,
// delegations or wildcards, which this zone never holds).
func (s *Server) answer(m *dns.Msg, q dns.Question) {
	name := strings.ToLower(q.Name)
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY || !dns.IsSubDomain(s.origin, name) {
		m.Rcode = dns.RcodeRefused // not our zone: no AA, no data (RFC 1035 4.1.1)
		return
	}
	m.Authoritative = true
	d := s.data.Load()
	sh, i, ok := d.shards.find(name)
	if !ok {
		m.Rcode = dns.RcodeNameError // RFC 8020: nothing exists below it either
		m.Ns = []dns.RR{d.negativeSOA()}
		return
	}
	apex := name == s.origin
	var rrs []dns.RR
	if apex && (q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY) {
		rrs = append(rrs, s.servedOwn1(d.soa))
	}
	if !apex || q.Qtype != dns.TypeSOA {
		// The question's spelling: resolvers randomizing case (0x20) see
		// their own back.
		rrs = append(rrs, s.decodeType(sh, i, q.Name, q.Qtype)...)
	}
	if len(rrs) == 0 {
		m.Ns = []dns.RR{d.negativeSOA()} // NODATA (RFC 2308 2.2)
		return
	}
	if apex && q.Name != rrs[0].Header().Name {
		rrs[0] = s.served(rrs[0], q.Name) // the SOA
	}
	m.Answer = rrs
	m.Extra = append(m.Extra, s.glue(d, rrs)...) // after the OPT record, if any
}

// decodeType returns the records of type t (every one for ANY) of
// sh.names.at(i), as they are sent: owner name owner, the zone TTL for zero.
func (s *Server) decodeType(sh *shard, i int, owner string, t uint16) []dns.RR {
	var out []dns.RR
	for _, r := range sh.recsOf(i) {
		if r.t == t || t == dns.TypeANY {
			ttl := r.ttl
			if ttl == 0 {
				ttl = s.ttl
			}
			out = append(out, sh.decode(r, owner, ttl))
		}
	}
	return out
}

// negativeSOA is the SOA for the authority section of negative answers; its
// TTL is the negative-caching TTL (RFC 2308 3).
func (d *zoneData) negativeSOA() dns.RR {
	soa := *d.soa
	soa.Hdr.Ttl = min(d.soa.Hdr.Ttl, d.soa.Minttl)
	return &soa
}

// glue returns the in-zone A and AAAA records of NS and MX targets, for the
// additional section (RFC 1035 3.3.9, 3.3.11).
func (s *Server) glue(d *zoneData, rrs []dns.RR) []dns.RR {
	var extra []dns.RR
	for _, rr := range rrs {
		var target string
		switch rr := rr.(type) {
		case *dns.NS:
			target = rr.Ns
		case *dns.MX:
			target = rr.Mx
		default:
			continue
		}
		target = strings.ToLower(target)
		if !dns.IsSubDomain(s.origin, target) {
			continue
		}
		if sh, i, ok := d.shards.find(target); ok {
			extra = append(extra, s.decodeType(sh, i, target, dns.TypeA)...)
			extra = append(extra, s.decodeType(sh, i, target, dns.TypeAAAA)...)
		}
	}
	return extra
}

// write sends m, truncated to what the client can receive: over UDP the
// EDNS(0) payload size (at least 512, at most maxUDPSize), over TCP 64 KiB.
// Truncate sets TC when records had to be dropped (RFC 1035 4.2.1, RFC 6891
// 7), so the client retries over TCP.
func (s *Server) write(w dns.ResponseWriter, m *dns.Msg, opt *dns.OPT) {
	s.metrics.answered(m.Rcode)
	m.Truncate(replySize(w, opt))
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns: write reply", "remote", w.RemoteAddr(), "error", err)
	}
}

// replySize is the largest reply the client can receive: over UDP the
// EDNS(0) payload size (at least 512, at most maxUDPSize), over TCP 64 KiB.
func replySize(w dns.ResponseWriter, opt *dns.OPT) int {
	switch {
	case isTCP(w):
		return dns.MaxMsgSize
	case opt != nil:
		return max(dns.MinMsgSize, min(int(opt.UDPSize()), maxUDPSize))
	default:
		return dns.MinMsgSize
	}
}

func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}
