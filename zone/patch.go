package zone

import (
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Patch applies a change of the zone given as the records to delete and
// the records to add, in time proportional to the change rather than to
// the zone: it copies only the shards holding the names it touches, and
// queries keep reading the previous snapshot until it is swapped in.
//
// Records are read as Update reads them (names in any case, TTL zero for
// the zone TTL, out-of-zone, SOA, NS and nil records skipped and logged)
// and kept the same way. Deleting a record the zone does not serve, or one
// of the generated records (apex SOA and NS, configured addresses), does
// nothing; adding one it serves does nothing; a record in both lists is
// served afterwards. When nothing changed, the serial stays and no NOTIFY
// is sent. Otherwise the serial rules of Update apply (serial if greater
// in RFC 1982 arithmetic, else the current serial plus one, logged), the
// change is journaled for IXFR and the secondaries are notified. Patch
// returns the serial now served.
func (s *Server) Patch(serial uint32, deleted, added []dns.RR) uint32 {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	var del, add []dns.RR
	for _, rr := range deleted {
		if rr = s.accept(rr); rr != nil && !s.isGenerated(rr) {
			del = append(del, rr)
		}
	}
	for _, rr := range added {
		if rr = s.accept(rr); rr != nil {
			add = append(add, rr)
		}
	}
	cur := s.data.Load()
	next, del, add := s.change(cur, del, add)
	if next == nil {
		s.log.Debug("zone unchanged by patch", "zone", s.origin, "serial", cur.soa.Serial, "version", serial)
		return cur.soa.Serial
	}
	s.publish(cur, next, serial, del, add)
	return next.soa.Serial
}

// change returns the successor of cur (without SOA and journal) that has
// the records deleted removed and then the records added added, all
// accepted, and the records it actually removed and added; nil and no
// records when that changes nothing. It copies only the shards holding the
// names it touches.
func (s *Server) change(cur *zoneData, deleted, added []dns.RR) (next *zoneData, del, add []dns.RR) {
	p := &patch{s: s, cur: cur.shards, names: map[string]*pending{}}
	for _, rr := range deleted {
		p.remove(rr)
	}
	for _, rr := range added {
		p.add(rr)
	}
	del, add = p.changes()
	if len(del) == 0 && len(add) == 0 {
		return nil, nil, nil
	}
	for _, name := range slices.Clone(p.order) {
		p.settle(name)
	}
	return &zoneData{shards: p.apply(), records: cur.records - len(del) + len(add)}, del, add
}

// patch collects the new state of the names a Patch touches.
type patch struct {
	s     *Server
	cur   *shards
	names map[string]*pending
	order []string // names in the order first touched
}

// pending is the state of one name during a patch.
type pending struct {
	old, rrs  []dns.RR // records before and after (copies: decoded from the shard)
	changed   bool     // rrs holds other records than old
	children  uint32   // existing names directly below
	children0 uint32   // the same before the patch
	exists    bool     // as the parent's children count has it
}

// get returns the state of name, loaded from the current snapshot when
// first touched.
func (p *patch) get(name string) *pending {
	if pn, ok := p.names[name]; ok {
		return pn
	}
	rrs, children, ok := p.cur.records(name)
	pn := &pending{old: rrs, rrs: rrs, children: children, children0: children, exists: ok}
	p.names[name] = pn
	p.order = append(p.order, name)
	return pn
}

// remove deletes rr from its name, if present.
func (p *patch) remove(rr dns.RR) {
	pn := p.get(rr.Header().Name)
	if i := p.s.indexOf(pn.rrs, rr); i >= 0 {
		pn.rrs = slices.Delete(slices.Clone(pn.rrs), i, i+1)
	}
}

// add adds rr to its name, after the records of its type, if absent.
func (p *patch) add(rr dns.RR) {
	pn := p.get(rr.Header().Name)
	if p.s.indexOf(pn.rrs, rr) >= 0 {
		return
	}
	t := rr.Header().Rrtype
	at := len(pn.rrs)
	for i, r := range pn.rrs {
		if r.Header().Rrtype > t {
			at = i
			break
		}
	}
	pn.rrs = slices.Insert(slices.Clone(pn.rrs), at, rr)
}

// changes returns the records deleted and added, name by name.
func (p *patch) changes() (deleted, added []dns.RR) {
	for _, name := range p.order {
		pn := p.names[name]
		d, a := p.s.minus(pn.old, pn.rrs), p.s.minus(pn.rrs, pn.old)
		pn.changed = len(d) > 0 || len(a) > 0
		deleted, added = append(deleted, d...), append(added, a...)
	}
	return deleted, added
}

// settle carries a change of whether name exists to its parent's count of
// children, and on up while that changes whether the parent exists: a name
// exists while it holds records or names below it exist (RFC 8020).
func (p *patch) settle(name string) {
	pn := p.names[name]
	exists := len(pn.rrs) > 0 || pn.children > 0 || name == p.s.origin
	if exists == pn.exists || name == p.s.origin {
		return
	}
	pn.exists = exists
	parent := p.get(parentName(name))
	if exists {
		parent.children++
	} else {
		parent.children--
	}
	p.settle(parentName(name))
}

// apply returns the shards of the patched zone: the current array with the
// touched shards rebuilt.
func (p *patch) apply() *shards {
	byShard := map[int][]nameChange{}
	for name, pn := range p.names {
		if !pn.changed && pn.children == pn.children0 {
			continue // looked at only: its shard may stay as it is
		}
		b := shardOf(name)
		byShard[b] = append(byShard[b], nameChange{name: name, rrs: pn.rrs, children: pn.children})
	}
	next := new(shards)
	*next = *p.cur
	copied := map[int]bool{}
	for b, changes := range byShard {
		slices.SortFunc(changes, func(x, y nameChange) int { return strings.Compare(x.name, y.name) })
		g := b / groupSize
		if !copied[g] {
			ng := new(shardGroup)
			if p.cur[g] != nil {
				*ng = *p.cur[g]
			}
			next[g], copied[g] = ng, true
		}
		next[g][b%groupSize] = p.cur.get(b).apply(changes)
	}
	return next
}
