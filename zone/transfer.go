package zone

import (
	"iter"
	"slices"
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
	rrs, kind := d.ixfrAnswer(r)
	rrs = s.servedOwn(rrs) // journaled records keep a TTL of zero
	if !tcp {
		// RFC 1995 2: over UDP the answer must fit in one message; if it
		// does not, the SOA alone tells the client to retry over TCP.
		m.Compress = true
		m.Answer = rrs
		if kind == kindAXFR || m.Len() > replySize(w, opt) {
			m.Answer, kind = []dns.RR{d.soa}, kindUDPFallback
		}
		s.metrics.transfers(kind).Add(1)
		return false
	}
	count := len(rrs)
	if kind == kindAXFR {
		count = d.records + 2
	}
	s.log.Info("dns: zone transfer", "zone", s.origin, "remote", w.RemoteAddr(),
		"type", dns.TypeToString[q.Qtype], "answer", kind, "serial", d.soa.Serial, "records", count)
	s.metrics.transfers(kind).Add(1)
	tw := &transferWriter{w: w, r: r, opt: m.Extra}
	if kind == kindAXFR {
		tw.send(s.axfr(d))
	} else {
		tw.send(slices.Values(rrs))
	}
	if err := tw.flush(); err != nil {
		s.log.Warn("dns: zone transfer aborted", "zone", s.origin, "remote", w.RemoteAddr(), "error", err)
	}
	return true
}

// ixfrAnswer returns the records answering the IXFR r, and which kind of
// answer they are. An IXFR (RFC 1995 4) from a client whose serial is the
// current one, or newer (another instance may be ahead), gets the SOA
// alone; from a serial in the journal the changes since. From any other
// serial, without the client's SOA, and for an AXFR, the answer is the
// full zone: kindAXFR and no records (axfr streams them).
func (d *zoneData) ixfrAnswer(r *dns.Msg) ([]dns.RR, string) {
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
	return nil, kindAXFR
}

// axfr yields the records of d in AXFR order (RFC 5936 2.2): the SOA, the
// apex NS records, every other record shard by shard, the SOA again. It
// reads d, an immutable snapshot, while the transfer is written, so the
// full zone is never copied.
func (s *Server) axfr(d *zoneData) iter.Seq[dns.RR] {
	return func(yield func(dns.RR) bool) {
		if !yield(d.soa) {
			return
		}
		if sh, i, ok := d.shards.find(s.origin); ok {
			for _, rr := range s.decodeType(sh, i, s.origin, dns.TypeNS) {
				if !yield(rr) {
					return
				}
			}
		}
		for rr := range d.shards.all(s.origin, s.ttl) {
			if !yield(rr) {
				return
			}
		}
		yield(d.soa)
	}
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

// transferWriter writes a transfer answer as response messages of about
// axfrChunk bytes each, well under the 64 KiB TCP limit (RFC 5936 2.2),
// sending each as soon as it is full. Every message repeats the question
// and the reply's OPT (RFC 5936 2.2.1).
type transferWriter struct {
	w   dns.ResponseWriter
	r   *dns.Msg
	opt []dns.RR // the reply's additional section: the OPT record, if any
	cur *dns.Msg
	len int
	err error
}

// send adds every record of rrs, stopping at the first write error.
func (t *transferWriter) send(rrs iter.Seq[dns.RR]) {
	for rr := range rrs {
		if !t.add(rr) {
			return
		}
	}
}

// add appends rr to the current message, writing that one first when rr
// would take it past axfrChunk. It returns false once a write failed.
func (t *transferWriter) add(rr dns.RR) bool {
	n := dns.Len(rr)
	if t.cur != nil && t.len > 0 && t.len+n > axfrChunk {
		t.write()
	}
	if t.err != nil {
		return false
	}
	if t.cur == nil {
		t.cur = new(dns.Msg)
		t.cur.SetReply(t.r)
		t.cur.Authoritative = true
		t.cur.Compress = true
		t.cur.Extra = t.opt
		t.len = 0
	}
	t.cur.Answer = append(t.cur.Answer, rr)
	t.len += n
	return true
}

func (t *transferWriter) write() {
	if t.err == nil {
		t.err = t.w.WriteMsg(t.cur)
	}
	t.cur = nil
}

// flush writes the last message and returns the first write error.
func (t *transferWriter) flush() error {
	if t.cur != nil {
		t.write()
	}
	return t.err
}
