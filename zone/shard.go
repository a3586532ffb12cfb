package zone

import (
	"encoding/binary"
	"iter"
	"net"
	"slices"
	"strings"
	"unique"

	"github.com/miekg/dns"
)

// numShards is the number of parts the zone's names are split into, by a
// hash of the owner name. A Patch copies only the shards it touches: at a
// million customer domains (some five million names with the empty
// non-terminals) a shard holds about 150, so adding or deleting a domain
// copies some 100 KB (BenchmarkPatch; 230 KB with half as many shards,
// whose garbage was half of a million-domain daemon's CPU in one-by-one
// adds). It stays below 1<<16: bucketize keeps a shard number in 16 bits.
const numShards = numGroups * groupSize

// The shards are held in groups, so that a change copies the pointers of
// the groups and of the touched groups' shards, not of every shard.
const (
	numGroups = 128
	groupSize = 256
)

// shards is the whole zone's data: one immutable shard per hash bucket,
// nil when no name of the zone falls in it, in groups (nil when all its
// shards are). A snapshot holds a pointer to one; a change copies it and
// the groups it touches, and replaces the shards it touched.
type shards [numGroups]*shardGroup

type shardGroup [groupSize]*shard

// get returns shard b.
func (z *shards) get(b int) *shard {
	if g := z[b/groupSize]; g != nil {
		return g[b%groupSize]
	}
	return nil
}

// packShards returns flat, numShards shards by bucket, in groups.
func packShards(flat []*shard) *shards {
	z := new(shards)
	for b, sh := range flat {
		if sh == nil {
			continue
		}
		g := z[b/groupSize]
		if g == nil {
			g = new(shardGroup)
			z[b/groupSize] = g
		}
		g[b%groupSize] = sh
	}
	return z
}

// each yields every shard of z that is not nil.
func (z *shards) each() iter.Seq[*shard] {
	return func(yield func(*shard) bool) {
		for _, g := range z {
			if g == nil {
				continue
			}
			for _, sh := range g {
				if sh != nil && !yield(sh) {
					return
				}
			}
		}
	}
}

// shard holds the names of one hash bucket and their records. It is never
// modified once published: a change builds a new shard.
//
// Records are kept in a compact form rather than as dns.RR values: a
// million domains are some four million records, and a dns.RR costs a
// heap object (two for a TXT) with a copy of its owner name's header. The
// strings (TXT values, MX targets) are the caller's, shared, not copied.
type shard struct {
	names   nameList // sorted; the names of the bucket that hold records
	nodes   []node   // nodes[i] describes names[i]
	ents    nameList // sorted; the empty non-terminals of the bucket
	entKids []uint32 // entKids[k] counts the existing names directly below ents[k]
	recs    []rec    // the records, grouped by name in names order, by type within a name
	strs    []string // the strings recs refer to
	other   []dns.RR // records of types without a compact form
}

// A name of a shard is designated by its index: i in names, or
// len(names)+k for ents[k]. An empty non-terminal (a name without records
// that exists because names below it do) answers NODATA (RFC 8020). The
// empty non-terminals are apart from the other names so that adding them
// to a built shard does not copy it.

// node describes a name that holds records.
type node struct {
	off, n   uint32 // the name's records: recs[off : off+n]
	children uint32 // names directly below this one that exist, in any shard
}

// rec is one record in compact form. What a and b hold depends on the
// type: TXT strs[a:a+b]; MX the target strs[a] and preference b; A the
// IPv4 address a; AAAA the address strs[a]; any other type (b ==
// otherRec) the record other[a] as given.
type rec struct {
	t     uint16
	class uint16
	ttl   uint32 // as given: zero is the zone's TTL
	a, b  uint32
}

// otherRec marks a record kept as a dns.RR in shard.other.
const otherRec = ^uint32(0)

// shardOf returns the bucket of name, a lowercase FQDN.
func shardOf(name string) int {
	return int(nameHash(name) % numShards)
}

// nameHash is the FNV-1a hash of name.
func nameHash(name string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return h
}

// find returns the index of name in sh.
func (sh *shard) find(name string) (int, bool) {
	if sh == nil {
		return 0, false
	}
	if i, ok := sh.names.search(0, name); ok {
		return i, true
	}
	if k, ok := sh.ents.search(0, name); ok {
		return sh.names.len() + k, true
	}
	return 0, false
}

// name returns the name at index i.
func (sh *shard) name(i int) string {
	if n := sh.names.len(); i >= n {
		return sh.ents.at(i - n)
	}
	return sh.names.at(i)
}

// children returns the count of existing names directly below name i.
func (sh *shard) children(i int) uint32 {
	if i < sh.names.len() {
		return sh.nodes[i].children
	}
	return sh.entKids[i-sh.names.len()]
}

// addChildren adds c to the count of children of name i; only for a shard
// still private to its builder.
func (sh *shard) addChildren(i int, c uint32) {
	if i < sh.names.len() {
		sh.nodes[i].children += c
	} else {
		sh.entKids[i-sh.names.len()] += c
	}
}

// recsOf returns the records of name i (none for an empty non-terminal).
func (sh *shard) recsOf(i int) []rec {
	if i >= sh.names.len() {
		return nil
	}
	nd := sh.nodes[i]
	return sh.recs[nd.off : nd.off+nd.n : nd.off+nd.n]
}

// find returns the shard and index of name (a lowercase FQDN), and
// whether the name exists.
func (z *shards) find(name string) (*shard, int, bool) {
	sh := z.get(shardOf(name))
	i, ok := sh.find(name)
	return sh, i, ok
}

// records returns the records of name as dns.RR values, owner name and TTL
// as stored, the count of existing names directly below it, and whether
// the name exists.
func (z *shards) records(name string) ([]dns.RR, uint32, bool) {
	sh, i, ok := z.find(name)
	if !ok {
		return nil, 0, false
	}
	return sh.decodeAll(i), sh.children(i), true
}

// count returns the number of records in z.
func (z *shards) count() int {
	n := 0
	for sh := range z.each() {
		n += len(sh.recs)
	}
	return n
}

// strIndex maps the first string of each run of sh.strs a shard builder
// added to the run's offset, so that records with the same data (the SPF
// TXT and the MX target of every bounce domain, a DKIM key shared by
// several domains, the same DMARC policy) share one run: at a million
// domains the string headers alone were 90 MB.
type strIndex map[string]uint32

// addStrs appends ss to sh.strs, or finds them there through idx (nil:
// no sharing), and returns their offset.
func (sh *shard) addStrs(ss []string, idx strIndex) uint32 {
	if idx != nil && len(ss) > 0 {
		if a, ok := idx[ss[0]]; ok && int(a)+len(ss) <= len(sh.strs) && slices.Equal(sh.strs[a:int(a)+len(ss)], ss) {
			return a
		}
	}
	a := uint32(len(sh.strs))
	sh.strs = append(sh.strs, ss...)
	if idx != nil && len(ss) > 0 {
		idx[ss[0]] = a
	}
	return a
}

// put appends rr, whose owner is the name being added, to sh. last, when
// not nil, is the MX target put last, to reuse; idx shares string runs
// (addStrs).
func (sh *shard) put(rr dns.RR, last *string, idx strIndex) {
	h := rr.Header()
	r := rec{t: h.Rrtype, class: h.Class, ttl: h.Ttl}
	switch x := rr.(type) {
	case *dns.TXT:
		if h.Rrtype == dns.TypeTXT {
			r.a, r.b = sh.addStrs(x.Txt, idx), uint32(len(x.Txt))
			sh.recs = append(sh.recs, r)
			return
		}
	case *dns.MX:
		if h.Rrtype == dns.TypeMX {
			// Every bounce domain has the same target: one copy of it.
			mx := x.Mx
			switch {
			case last == nil:
				mx = unique.Make(mx).Value()
			case *last == mx:
				mx = *last
			default:
				mx = unique.Make(mx).Value()
				*last = mx
			}
			r.a, r.b = sh.addStrs([]string{mx}, idx), uint32(x.Preference)
			sh.recs = append(sh.recs, r)
			return
		}
	case *dns.A:
		if v4 := x.A.To4(); h.Rrtype == dns.TypeA && v4 != nil {
			r.a = binary.BigEndian.Uint32(v4)
			sh.recs = append(sh.recs, r)
			return
		}
	case *dns.AAAA:
		if h.Rrtype == dns.TypeAAAA && len(x.AAAA) == net.IPv6len {
			r.a = sh.addStrs([]string{string(x.AAAA)}, idx)
			sh.recs = append(sh.recs, r)
			return
		}
	}
	r.a, r.b = uint32(len(sh.other)), otherRec
	sh.other = append(sh.other, rr)
	sh.recs = append(sh.recs, r)
}

// copyRec appends r, a record of src, to sh; idx shares string runs
// (addStrs).
func (sh *shard) copyRec(src *shard, r rec, idx strIndex) {
	switch {
	case r.b == otherRec:
		o := src.other[r.a]
		r.a = uint32(len(sh.other))
		sh.other = append(sh.other, o)
	case r.t == dns.TypeTXT:
		r.a = sh.addStrs(src.strs[r.a:r.a+r.b], idx)
	case r.t == dns.TypeMX || r.t == dns.TypeAAAA:
		r.a = sh.addStrs(src.strs[r.a:r.a+1], idx)
	}
	sh.recs = append(sh.recs, r)
}

// decode returns r, a record of sh, as a new dns.RR with owner and ttl
// (for a record kept as given, that one when they match).
func (sh *shard) decode(r rec, owner string, ttl uint32) dns.RR {
	h := dns.RR_Header{Name: owner, Rrtype: r.t, Class: r.class, Ttl: ttl}
	switch {
	case r.b == otherRec:
		o := sh.other[r.a]
		if oh := o.Header(); oh.Name == owner && oh.Ttl == ttl {
			return o // never modified
		}
		c := dns.Copy(o)
		*c.Header() = h
		return c
	case r.t == dns.TypeTXT:
		return &dns.TXT{Hdr: h, Txt: sh.strs[r.a : r.a+r.b : r.a+r.b]}
	case r.t == dns.TypeMX:
		return &dns.MX{Hdr: h, Preference: uint16(r.b), Mx: sh.strs[r.a]}
	case r.t == dns.TypeA:
		ip := make(net.IP, net.IPv4len)
		binary.BigEndian.PutUint32(ip, r.a)
		return &dns.A{Hdr: h, A: ip}
	default: // AAAA
		return &dns.AAAA{Hdr: h, AAAA: net.IP(sh.strs[r.a])}
	}
}

// decodeAll returns the records of name i as stored.
func (sh *shard) decodeAll(i int) []dns.RR {
	recs := sh.recsOf(i)
	if len(recs) == 0 {
		return nil
	}
	out := make([]dns.RR, len(recs))
	for k, r := range recs {
		out[k] = sh.decode(r, sh.names.at(i), r.ttl)
	}
	return out
}

// sameRec reports whether r of sh and q of other are the same record of
// one owner: type, class, served TTL (zero read as zoneTTL) and data.
func (sh *shard) sameRec(r rec, other *shard, q rec, zoneTTL uint32) bool {
	ttl := func(r rec) uint32 {
		if r.ttl == 0 {
			return zoneTTL
		}
		return r.ttl
	}
	if r.t != q.t || r.class != q.class || ttl(r) != ttl(q) || (r.b == otherRec) != (q.b == otherRec) {
		return false
	}
	switch {
	case r.b == otherRec:
		a, b := sh.other[r.a], other.other[q.a]
		return a == b || dns.IsDuplicate(a, b)
	case r.t == dns.TypeTXT:
		return slices.Equal(sh.strs[r.a:r.a+r.b], other.strs[q.a:q.a+q.b])
	case r.t == dns.TypeMX:
		return r.b == q.b && strings.EqualFold(sh.strs[r.a], other.strs[q.a])
	case r.t == dns.TypeA:
		return r.a == q.a
	default: // AAAA
		return sh.strs[r.a] == other.strs[q.a]
	}
}

// all yields every record of z as it is sent (owner and TTL filled in),
// shard by shard, but for the NS records of name apex.
func (z *shards) all(apex string, zoneTTL uint32) iter.Seq[dns.RR] {
	return func(yield func(dns.RR) bool) {
		for sh := range z.each() {
			for i := range sh.names.len() {
				name := sh.names.at(i)
				for _, r := range sh.recsOf(i) {
					if r.t == dns.TypeNS && name == apex {
						continue
					}
					ttl := r.ttl
					if ttl == 0 {
						ttl = zoneTTL
					}
					if !yield(sh.decode(r, name, ttl)) {
						return
					}
				}
			}
		}
	}
}

// nameChange is the new state of one name of a shard: its records (by
// type) and its count of existing children. Without either the name no
// longer exists.
type nameChange struct {
	name     string
	rrs      []dns.RR
	children uint32
}

// apply returns a new shard: sh (nil for an empty one) with the names of
// changes, sorted by name, replaced, added or removed. It returns nil when
// no name remains.
func (sh *shard) apply(changes []nameChange) *shard {
	var old shard
	if sh != nil {
		old = *sh
	}
	extra, size := 0, 0
	for _, c := range changes {
		extra += len(c.rrs)
		size += len(c.name)
	}
	names := newNameListBuilder(old.names.len()+len(changes), len(old.names.data)+size)
	// Most changes leave the empty non-terminals as they are: then the new
	// shard shares them.
	entsChanged := false
	for _, c := range changes {
		if _, found := old.ents.search(0, c.name); found || len(c.rrs) == 0 && c.children > 0 {
			entsChanged = true
			break
		}
	}
	var ents *nameListBuilder
	var entKids []uint32
	if entsChanged {
		ents = newNameListBuilder(old.ents.len()+len(changes), len(old.ents.data)+size)
		entKids = make([]uint32, 0, old.ents.len()+len(changes))
	}
	out := &shard{
		nodes: make([]node, 0, old.names.len()+len(changes)),
		recs:  make([]rec, 0, len(old.recs)+extra),
		strs:  make([]string, 0, len(old.strs)+2*extra),
		other: slices.Grow([]dns.RR(nil), len(old.other)),
	}
	idx := make(strIndex, len(old.strs)+2*extra)
	keep := func(i int) {
		names.add(old.names.at(i))
		out.nodes = append(out.nodes, node{off: uint32(len(out.recs)), n: old.nodes[i].n, children: old.nodes[i].children})
		for _, r := range old.recsOf(i) {
			out.copyRec(&old, r, idx)
		}
	}
	// The names with records, then the empty non-terminals. Binary searches
	// rather than walks: comparing names reads them, each a cache miss.
	i, j := 0, 0
	for _, c := range changes {
		at, found := old.names.search(i, c.name)
		for ; i < at; i++ {
			keep(i)
		}
		if found {
			i++
		}
		if len(c.rrs) > 0 {
			names.add(c.name)
			out.nodes = append(out.nodes, node{off: uint32(len(out.recs)), n: uint32(len(c.rrs)), children: c.children})
			for _, rr := range c.rrs {
				out.put(rr, nil, idx)
			}
		}
		if !entsChanged {
			continue
		}
		at, found = old.ents.search(j, c.name)
		for ; j < at; j++ {
			ents.add(old.ents.at(j))
			entKids = append(entKids, old.entKids[j])
		}
		if found {
			j++
		}
		if len(c.rrs) == 0 && c.children > 0 {
			ents.add(c.name)
			entKids = append(entKids, c.children)
		}
	}
	for ; i < old.names.len(); i++ {
		keep(i)
	}
	if entsChanged {
		for ; j < old.ents.len(); j++ {
			ents.add(old.ents.at(j))
			entKids = append(entKids, old.entKids[j])
		}
		out.ents, out.entKids = ents.list(), entKids
	} else {
		out.ents, out.entKids = old.ents, old.entKids
	}
	out.names = names.list()
	if out.names.len() == 0 && out.ents.len() == 0 {
		return nil
	}
	if len(out.other) == 0 {
		out.other = nil
	}
	return out
}

// entName is an empty non-terminal found by linkParents.
type entName struct {
	name     string
	children uint32
}

// withENTs returns sh (nil: empty) with the empty non-terminals ents,
// sorted and not in sh, added, and their indexes in the result. Everything
// else is shared with sh.
func (sh *shard) withENTs(ents []entName) (*shard, []uint32) {
	out := new(shard)
	if sh != nil {
		*out = *sh
	}
	old, oldKids := out.ents, out.entKids
	n, size := old.len()+len(ents), len(old.data)
	for _, e := range ents {
		size += len(e.name)
	}
	b := newNameListBuilder(n, size)
	kids := make([]uint32, 0, n)
	at := make([]uint32, 0, len(ents)) // where the new ones go
	j := 0
	for _, e := range ents {
		k, _ := old.search(j, e.name)
		for ; j < k; j++ {
			b.add(old.at(j))
			kids = append(kids, oldKids[j])
		}
		at = append(at, uint32(out.names.len()+len(kids)))
		b.add(e.name)
		kids = append(kids, e.children)
	}
	for ; j < old.len(); j++ {
		b.add(old.at(j))
		kids = append(kids, oldKids[j])
	}
	out.ents, out.entKids = b.list(), kids
	return out, at
}

// parentName returns the name one label up from name (a FQDN below the
// apex).
func parentName(name string) string {
	return name[parentOffset(name):]
}

// parentOffset returns where the parent of name starts in name.
func parentOffset(name string) int {
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '.':
			return i + 1
		case '\\': // an escaped octet: let miekg/dns find the label's end
			off, end := dns.NextLabel(name, 0)
			if end {
				return len(name) - 1
			}
			return off
		}
	}
	return len(name) - 1
}
