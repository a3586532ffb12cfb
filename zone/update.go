package zone

import (
	"slices"

	"github.com/miekg/dns"
)

// zoneData is an immutable snapshot of the zone. Snapshots share the
// shards a change did not touch.
type zoneData struct {
	soa *dns.SOA
	// loaded is false for the empty zone New starts with.
	loaded bool
	// shards holds every name that exists in the zone (lowercase FQDN) with
	// its records, the SOA excepted. Empty non-terminals are present without
	// records, so they answer NODATA rather than NXDOMAIN (RFC 8020).
	shards *shards
	// records counts the records of shards: the zone without its SOA.
	records int
	// journal holds the changes that led to this snapshot, oldest first;
	// the last one ends at soa.Serial.
	journal []delta
}

// delta is one change of the zone: the records deleted and added going from
// serial from to serial to (RFC 1995 4).
type delta struct {
	from, to       *dns.SOA
	deleted, added []dns.RR
}

// cost is the number of records delta takes in an IXFR answer.
func (c delta) cost() int { return 2 + len(c.deleted) + len(c.added) }

// Update atomically replaces every record of the zone except the generated
// ones (apex SOA and NS, configured addresses). Names are fully qualified,
// with or without the trailing dot, in any case. Records outside the zone,
// SOA and NS records, and nil entries are skipped (and logged); a record
// with TTL zero is served with the zone TTL; duplicates count once.
//
// The zone keeps records in a compact form of its own but shares their
// strings (TXT values are not copied) and keeps records of types other
// than TXT, MX, A and AAAA, and the records of the IXFR journal, as given:
// the caller may reuse the rrs slice but must not modify the records
// afterwards. Safe to call concurrently with serving.
//
// serial is the caller's version of the content. When the records equal
// the served ones, nothing changes: the serial stays and no NOTIFY is sent.
// Otherwise the zone takes serial if it is greater than the current one in
// serial arithmetic (RFC 1982), else the current serial plus one (logged:
// instances serving the same data may then disagree on the serial), records
// the change for IXFR and notifies the secondaries. The first change (by
// Update or Patch) takes serial as it is and is not journaled: a secondary
// has nothing older to catch up from. Update returns the serial now served.
//
// Update costs time in proportion to the whole zone (a reload builds the
// new zone shard by shard, compares it with the served one and applies the
// difference as Patch does): it is for the first load. Apply later changes
// with Patch.
func (s *Server) Update(serial uint32, rrs []dns.RR) uint32 {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	cur := s.data.Load()
	if !cur.loaded {
		next := &zoneData{shards: s.build(rrs)}
		next.records = next.shards.count()
		s.publish(cur, next, serial, nil, nil)
		return next.soa.Serial
	}
	// A reload: the difference with the served zone, applied as a Patch
	// would, so unchanged shards and the records in them stay as they are.
	deleted, added := s.diffFull(cur.shards, rrs)
	next, deleted, added := s.change(cur, deleted, added)
	if next == nil {
		s.log.Debug("zone unchanged", "zone", s.origin, "serial", cur.soa.Serial, "version", serial)
		return cur.soa.Serial
	}
	s.publish(cur, next, serial, deleted, added)
	return next.soa.Serial
}

// publish completes next, the successor of cur holding a change (deleted,
// added) or the first load, with its serial and journal, swaps it in and
// notifies the secondaries. updateMu must be held.
func (s *Server) publish(cur, next *zoneData, serial uint32, deleted, added []dns.RR) {
	if cur.loaded {
		if !serialGreater(serial, cur.soa.Serial) {
			s.log.Warn("zone changed but the given serial is not greater than the served one; using served+1, so instances may disagree on the serial",
				"zone", s.origin, "given", serial, "served", cur.soa.Serial)
			serial = cur.soa.Serial + 1
		}
	}
	next.loaded = true
	next.soa = s.soaRecord(serial)
	if cur.loaded {
		next.journal = s.journal(cur, next, deleted, added)
	}
	s.data.Store(next)
	s.log.Debug("zone updated", "zone", s.origin, "serial", serial, "records", next.records,
		"deleted", len(deleted), "added", len(added))
	s.kickNotify()
}

// serialGreater reports whether a is greater than b in serial number
// arithmetic (RFC 1982 3.2); a distance of exactly 2^31 is undefined and
// counts as not greater.
func serialGreater(a, b uint32) bool {
	return a != b && a-b < 1<<31
}

// journal returns cur's journal followed by the change to next, without the
// oldest changes past the configured size or once the changes from the
// oldest kept serial would take more records than a full transfer (then an
// AXFR is the better answer anyway).
func (s *Server) journal(cur, next *zoneData, deleted, added []dns.RR) []delta {
	j := append(slices.Clone(cur.journal), delta{from: cur.soa, to: next.soa, deleted: deleted, added: added})
	total := 0
	for _, c := range j {
		total += c.cost()
	}
	limit := next.records + 2 // an AXFR: SOA, records, SOA
	for len(j) > 0 && (len(j) > s.journalSize || total > limit) {
		total -= j[0].cost()
		j = j[1:]
	}
	return slices.Clip(j)
}

// soaRecord returns the apex SOA with serial.
func (s *Server) soaRecord(serial uint32) *dns.SOA {
	return &dns.SOA{
		Hdr:     header(s.origin, dns.TypeSOA, s.ttl),
		Ns:      s.nameservers[0],
		Mbox:    "hostmaster." + s.origin,
		Serial:  serial,
		Refresh: s.timers[0],
		Retry:   s.timers[1],
		Expire:  s.timers[2],
		Minttl:  s.timers[3],
	}
}

// accept returns rr, or a normalized copy of it, or nil when rr does not
// belong in the zone's data.
func (s *Server) accept(rr dns.RR) dns.RR {
	if rr == nil {
		return nil
	}
	h := rr.Header()
	if s.plainInZone(h.Name) && h.Class != 0 && h.Rrtype != dns.TypeSOA && h.Rrtype != dns.TypeNS {
		return rr // the common case, decided without normalizing
	}
	name, err := normalizeName(h.Name)
	switch {
	case err != nil:
		s.log.Warn("zone update: skipping record with invalid name", "record", rr.String(), "error", err)
		return nil
	case !dns.IsSubDomain(s.origin, name):
		s.log.Warn("zone update: skipping record outside the zone", "zone", s.origin, "record", rr.String())
		return nil
	case h.Rrtype == dns.TypeSOA || h.Rrtype == dns.TypeNS:
		s.log.Warn("zone update: skipping generated type (SOA/NS)", "record", rr.String())
		return nil
	case name == h.Name && h.Class != 0:
		return rr // already normalized; TTL zero is resolved when served
	}
	rr = dns.Copy(rr)
	h = rr.Header()
	h.Name = name
	if h.Class == 0 {
		h.Class = dns.ClassINET
	}
	return rr
}

// plainInZone reports whether name is a lowercase FQDN strictly inside the
// zone made only of letters, digits, hyphens and underscores, with labels
// of 1 to 63 octets and at most 254 octets in all: a name accept keeps as
// it is. Anything else (upper case, escapes, odd octets) goes the slow
// way, through normalizeName and dns.IsSubDomain.
func (s *Server) plainInZone(name string) bool {
	n, o := len(name), len(s.origin)
	if n <= o+1 || n > 254 || name[n-o-1] != '.' || name[n-o:] != s.origin {
		return false
	}
	label := 0
	for i := 0; i < n-o; i++ {
		c := name[i]
		if c == '.' {
			if label == 0 {
				return false
			}
			label = 0
			continue
		}
		if !plainOctet[c] {
			return false
		}
		if label++; label > 63 {
			return false
		}
	}
	return true
}

// plainOctet marks the octets plainInZone accepts in a label (read only).
var plainOctet = func() (t [256]bool) {
	for _, c := range "abcdefghijklmnopqrstuvwxyz0123456789-_" {
		t[c] = true
	}
	return t
}()
