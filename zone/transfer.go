package zone

import (
	"strings"

	"github.com/miekg/dns"
)

// axfrChunk is the approximate uncompressed size at which a transfer
// response is split into another message (RFC 5936 2.2, RFC 1995 2: several
// messages allowed).
const axfrChunk = 16 * 1024

// Kinds of transfer answer, the values of the "kind" metric label.
const (
	kindAXFR        = "axfr"         // the full zone (AXFR, or IXFR with a serial not in the journal)
	kindIXFR        = "ixfr"         // the changes since the client's serial
	kindUpToDate    = "current"      // IXFR from a client that has the current serial: the SOA alone
	kindUDPFallback = "udp_soa_only" // IXFR over UDP whose answer does not fit: the SOA alone
)

// transferOut answers an AXFR or IXFR request from an allow_transfer peer.
// It returns true when it wrote the response itself; otherwise m holds the
// answer or refusal for ServeDNS to send.
func (s *Server) transferOut(w dns.ResponseWriter, r, m *dns.Msg, opt *dns.OPT) bool {
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	tcp := isTCP(w)
	switch {
	case !dns.IsSubDomain(s.origin, name):
		m.Rcode = dns.RcodeRefused
		return false
	case name != s.origin:
		m.Rcode = dns.RcodeNotAuth // not a zone apex we serve
		return false
	case !s.mayTransfer(w.RemoteAddr()) || !tcp && q.Qtype == dns.TypeAXFR:
		// Only to listed secondaries; and no AXFR over UDP (RFC 5936 4.2).
		s.log.Warn("dns: zone transfer refused", "zone", s.origin, "remote", w.RemoteAddr(),
			"type", dns.TypeToString[q.Qtype], "tcp", tcp)
		s.metrics.refused.Add(1)
		m.Rcode = dns.RcodeRefused
		return false
	}
	d := s.data.Load()
	m.Authoritative = true
	rrs, kind := d.transferRecords(r)
	if !tcp {
		// RFC 1995 2: over UDP the answer must fit in one message; if it
		// does not, the SOA alone tells the client to retry over TCP.
		m.Compress = true
		m.Answer = rrs
		if m.Len() > replySize(w, opt) || kind == kindAXFR {
			m.Answer, kind = []dns.RR{d.soa}, kindUDPFallback
		}
		s.metrics.transfers(kind).Add(1)
		return false
	}
	s.log.Info("dns: zone transfer", "zone", s.origin, "remote", w.RemoteAddr(),
		"type", dns.TypeToString[q.Qtype], "answer", kind, "serial", d.soa.Serial, "records", len(rrs))
	s.metrics.transfers(kind).Add(1)
	for _, msg := range transferMessages(r, m, rrs) {
		if err := w.WriteMsg(msg); err != nil {
			s.log.Warn("dns: zone transfer aborted", "zone", s.origin, "remote", w.RemoteAddr(), "error", err)
			return true
		}
	}
	return true
}

// transferRecords returns the records answering the AXFR or IXFR r, and
// which kind of answer they are. An IXFR (RFC 1995 4) from a client whose
// serial is the current one, or newer (another instance may be ahead),
// gets the SOA alone; from a serial in the journal the changes since; from
// any other serial, or without the client's SOA, the full zone.
func (d *zoneData) transferRecords(r *dns.Msg) ([]dns.RR, string) {
	if r.Question[0].Qtype == dns.TypeIXFR {
		if client, ok := clientSerial(r, d.soa.Hdr.Name); ok {
			if client == d.soa.Serial || serialGreater(client, d.soa.Serial) {
				return []dns.RR{d.soa}, kindUpToDate
			}
			if rrs := d.incremental(client); rrs != nil {
				return rrs, kindIXFR
			}
		}
	}
	rrs := make([]dns.RR, 0, len(d.ordered)+2)
	rrs = append(rrs, d.soa)
	rrs = append(rrs, d.ordered...)
	return append(rrs, d.soa), kindAXFR
}

// clientSerial returns the serial of the SOA an IXFR request carries in its
// authority section for the zone (RFC 1995 3).
func clientSerial(r *dns.Msg, origin string) (uint32, bool) {
	for _, rr := range r.Ns {
		if soa, ok := rr.(*dns.SOA); ok && strings.EqualFold(soa.Hdr.Name, origin) {
			return soa.Serial, true
		}
	}
	return 0, false
}

// incremental returns the IXFR answer from serial to the current one, one
// difference sequence per journaled change (RFC 1995 4): the current SOA,
// then for each change the old SOA, the deleted records, the new SOA, the
// added records, and the current SOA again. It returns nil when serial is
// not in the journal.
func (d *zoneData) incremental(serial uint32) []dns.RR {
	for i, c := range d.journal {
		if c.from.Serial != serial {
			continue
		}
		rrs := []dns.RR{d.soa}
		for _, c := range d.journal[i:] {
			rrs = append(rrs, c.from)
			rrs = append(rrs, c.deleted...)
			rrs = append(rrs, c.to)
			rrs = append(rrs, c.added...)
		}
		return append(rrs, d.soa)
	}
	return nil
}

// transferMessages splits a transfer answer into response messages, each
// well under the 64 KiB TCP limit (RFC 5936 2.2). Every message repeats
// the question and the reply's OPT (RFC 5936 2.2.1).
func transferMessages(r, reply *dns.Msg, rrs []dns.RR) []*dns.Msg {
	next := func() *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		m.Compress = true
		m.Extra = reply.Extra // the OPT record, if any
		return m
	}
	msgs := []*dns.Msg{next()}
	cur, size := msgs[0], 0
	for _, rr := range rrs {
		if n := dns.Len(rr); size > 0 && size+n > axfrChunk {
			cur, size = next(), 0
			msgs = append(msgs, cur)
		}
		cur.Answer = append(cur.Answer, rr)
		size += dns.Len(rr)
	}
	return msgs
}
