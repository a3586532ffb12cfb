package zone

import (
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// zoneData is an immutable snapshot of the zone.
type zoneData struct {
	soa *dns.SOA
	// loaded is false for the empty zone New starts with.
	loaded bool
	// nodes maps every name that exists in the zone (lowercase FQDN) to its
	// RRsets by type. Empty non-terminals are present with an empty map, so
	// they answer NODATA rather than NXDOMAIN (RFC 8020).
	nodes map[string]map[uint16][]dns.RR
	// ordered holds every record except the SOA, apex NS first, for AXFR.
	ordered []dns.RR
	// content is ordered in canonical order (sorted by presentation form,
	// duplicates removed): what Update compares and diffs.
	content []entry
	// journal holds the changes that led to this snapshot, oldest first;
	// the last one ends at soa.Serial.
	journal []delta
}

// entry is a record with its presentation form, the identity Update
// compares records by.
type entry struct {
	key string
	rr  dns.RR
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
// with TTL zero gets the zone TTL; duplicates count once. The records are
// copied: the caller may reuse rrs. Safe to call concurrently with serving.
//
// serial is the caller's version of the content. When the records equal
// the served ones, nothing changes: the serial stays and no NOTIFY is sent.
// Otherwise the zone takes serial if it is greater than the current one in
// serial arithmetic (RFC 1982), else the current serial plus one (logged:
// instances serving the same data may then disagree on the serial), records
// the change for IXFR and notifies the secondaries. The first Update takes
// serial as it is. Update returns the serial now served.
func (s *Server) Update(serial uint32, rrs []dns.RR) uint32 {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	cur := s.data.Load()
	next := s.build(rrs)
	deleted, added := diff(cur.content, next.content)
	if cur.loaded && len(deleted) == 0 && len(added) == 0 {
		s.log.Debug("zone unchanged", "zone", s.origin, "serial", cur.soa.Serial, "version", serial)
		return cur.soa.Serial
	}
	if cur.loaded && !serialGreater(serial, cur.soa.Serial) {
		s.log.Warn("zone changed but the given serial is not greater than the served one; using served+1, so instances may disagree on the serial",
			"zone", s.origin, "given", serial, "served", cur.soa.Serial)
		serial = cur.soa.Serial + 1
	}
	next = next.withSerial(s, serial)
	next.loaded = true
	if len(deleted) > 0 || len(added) > 0 {
		next.journal = s.journal(cur, next, deleted, added)
	}
	s.data.Store(next)
	s.log.Debug("zone updated", "zone", s.origin, "serial", serial, "records", len(next.ordered),
		"deleted", len(deleted), "added", len(added))
	s.kickNotify()
	return serial
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
	limit := len(next.ordered) + 2 // an AXFR: SOA, records, SOA
	for len(j) > 0 && (len(j) > s.journalSize || total > limit) {
		total -= j[0].cost()
		j = j[1:]
	}
	return slices.Clip(j)
}

// diff returns the records of old missing from new and those of new
// missing from old; both inputs are in canonical order.
func diff(old, new []entry) (deleted, added []dns.RR) {
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		switch {
		case j == len(new) || i < len(old) && old[i].key < new[j].key:
			deleted = append(deleted, old[i].rr)
			i++
		case i == len(old) || new[j].key < old[i].key:
			added = append(added, new[j].rr)
			j++
		default:
			i++
			j++
		}
	}
	return deleted, added
}

// build makes a snapshot, without its SOA, holding the generated records
// and rrs.
func (s *Server) build(rrs []dns.RR) *zoneData {
	d := &zoneData{nodes: make(map[string]map[uint16][]dns.RR)}
	seen := make(map[string]bool)
	keep := func(rr dns.RR) {
		key := rr.String()
		if seen[key] {
			return
		}
		seen[key] = true
		name := rr.Header().Name
		d.add(name, rr)
		d.addAncestors(name, s.origin)
		d.ordered = append(d.ordered, rr)
		d.content = append(d.content, entry{key: key, rr: rr})
	}
	for _, ns := range s.nameservers {
		keep(&dns.NS{Hdr: header(s.origin, dns.TypeNS, s.ttl), Ns: ns})
	}
	for _, rr := range s.generated {
		keep(rr)
	}
	for _, rr := range rrs {
		if rr := s.accept(rr); rr != nil {
			keep(rr)
		}
	}
	slices.SortFunc(d.content, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	return d
}

// withSerial completes d, a snapshot from build, with its SOA.
func (d *zoneData) withSerial(s *Server, serial uint32) *zoneData {
	d.soa = &dns.SOA{
		Hdr:     header(s.origin, dns.TypeSOA, s.ttl),
		Ns:      s.nameservers[0],
		Mbox:    "hostmaster." + s.origin,
		Serial:  serial,
		Refresh: s.timers[0],
		Retry:   s.timers[1],
		Expire:  s.timers[2],
		Minttl:  s.timers[3],
	}
	d.add(s.origin, d.soa)
	return d
}

// accept returns a normalized copy of rr, or nil when rr does not belong in
// the zone's data.
func (s *Server) accept(rr dns.RR) dns.RR {
	if rr == nil {
		return nil
	}
	h := rr.Header()
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
	}
	rr = dns.Copy(rr)
	h = rr.Header()
	h.Name = name
	if h.Class == 0 {
		h.Class = dns.ClassINET
	}
	if h.Ttl == 0 {
		h.Ttl = s.ttl
	}
	return rr
}

func (d *zoneData) add(name string, rr dns.RR) {
	sets := d.nodes[name]
	if sets == nil {
		sets = make(map[uint16][]dns.RR)
		d.nodes[name] = sets
	}
	t := rr.Header().Rrtype
	sets[t] = append(sets[t], rr)
}

// addAncestors records every name between name and the apex as existing
// (RFC 8020: an empty non-terminal exists and answers NODATA).
func (d *zoneData) addAncestors(name, origin string) {
	for off, end := dns.NextLabel(name, 0); !end; off, end = dns.NextLabel(name, off) {
		parent := name[off:]
		if len(parent) < len(origin) {
			return
		}
		if _, ok := d.nodes[parent]; ok {
			return // its ancestors were added with it
		}
		d.nodes[parent] = map[uint16][]dns.RR{}
	}
}
