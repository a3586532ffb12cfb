package zone

import (
	"cmp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// buildChunk is the number of input records one worker of bucketize
// accepts at a time.
const buildChunk = 64 * 1024

// build returns the shards of a zone holding the generated records (apex
// NS, configured addresses) and rrs: the first load, on every core.
func (s *Server) build(rrs []dns.RR) *shards {
	buckets := s.bucketize(rrs)
	z := make([]*shard, numShards)
	tmp := make([]scratch, runtime.GOMAXPROCS(0))
	parents := make([][]parentRef, len(tmp)) // by worker
	parallelW(len(tmp), numShards, func(w, b int) {
		if buckets[b] == nil {
			return
		}
		z[b] = s.newShard(buckets[b], &tmp[w])
		buckets[b] = nil
		if tmp[w].seen == nil {
			tmp[w].seen = map[string]int{}
		}
		parents[w] = s.parentRefs(parents[w], z[b], b, nil, tmp[w].seen)
	})
	s.linkParents(z, slices.Concat(parents...))
	return packShards(z)
}

// diffFull returns the records cur holds that the zone of the generated
// records and rrs lacks, and those it holds that cur lacks: a full reload
// as a change. Each shard of the new zone is built, compared with cur's and
// dropped, so the whole new zone never exists at once.
func (s *Server) diffFull(cur *shards, rrs []dns.RR) (deleted, added []dns.RR) {
	buckets := s.bucketize(rrs)
	tmp := make([]scratch, runtime.GOMAXPROCS(0))
	del, add := make([][]dns.RR, len(tmp)), make([][]dns.RR, len(tmp)) // by worker
	parallelW(len(tmp), numShards, func(w, b int) {
		old := cur.get(b)
		if buckets[b] == nil && old == nil {
			return
		}
		next := s.newShard(buckets[b], &tmp[w])
		buckets[b] = nil
		d, a := s.diffShard(old, next)
		del[w], add[w] = append(del[w], d...), append(add[w], a...)
	})
	return slices.Concat(del...), slices.Concat(add...)
}

// bucketize accepts the generated records and rrs and returns them by
// shard, in no particular order. Records are accepted on every core; the
// temporary is the shard of each record, two octets (records accept had
// to copy are kept aside).
func (s *Server) bucketize(rrs []dns.RR) [][]dns.RR {
	const skipped = ^uint16(0) // not accepted; numShards is smaller
	fixed := len(s.fixed)
	total := fixed + len(rrs)
	input := func(i int) dns.RR {
		if i < fixed {
			return s.fixed[i]
		}
		return rrs[i-fixed]
	}
	bucket := make([]uint16, total)
	chunks := (total + buildChunk - 1) / buildChunk
	counts := make([][numShards]uint32, chunks)
	copies := make([]map[int]dns.RR, chunks) // by chunk: records accept normalized
	parallel(chunks, func(c int) {
		for i := c * buildChunk; i < min(total, (c+1)*buildChunk); i++ {
			in := input(i)
			rr := in
			if i >= fixed {
				rr = s.accept(in)
			}
			if rr == nil {
				bucket[i] = skipped
				continue
			}
			if rr != in {
				if copies[c] == nil {
					copies[c] = map[int]dns.RR{}
				}
				copies[c][i] = rr
			}
			b := shardOf(rr.Header().Name)
			bucket[i] = uint16(b)
			counts[c][b]++
		}
	})
	// Each chunk fills its own range of every bucket: counts becomes the
	// chunk's next position there.
	buckets := make([][]dns.RR, numShards)
	for b := range numShards {
		n := uint32(0)
		for c := range counts {
			n, counts[c][b] = n+counts[c][b], n
		}
		if n > 0 {
			buckets[b] = make([]dns.RR, n)
		}
	}
	parallel(chunks, func(c int) {
		for i := c * buildChunk; i < min(total, (c+1)*buildChunk); i++ {
			b := bucket[i]
			if b == skipped {
				continue
			}
			rr, ok := copies[c][i]
			if !ok {
				rr = input(i)
			}
			buckets[b][counts[c][b]] = rr
			counts[c][b]++
		}
	})
	return buckets
}

// diffShard compares the records of two versions of one shard (nil:
// empty); names without records (empty non-terminals) do not count.
func (s *Server) diffShard(a, b *shard) (deleted, added []dns.RR) {
	var x, y shard
	if a != nil {
		x = *a
	}
	if b != nil {
		y = *b
	}
	i, j := 0, 0
	for i < x.names.len() || j < y.names.len() {
		switch {
		case j == y.names.len() || i < x.names.len() && x.names.at(i) < y.names.at(j):
			deleted = append(deleted, x.decodeAll(i)...)
			i++
		case i == x.names.len() || y.names.at(j) < x.names.at(i):
			added = append(added, y.decodeAll(j)...)
			j++
		default:
			if xr, yr := x.recsOf(i), y.recsOf(j); !s.sameRecs(&x, xr, &y, yr) {
				xd, yd := x.decodeAll(i), y.decodeAll(j)
				deleted, added = append(deleted, s.minus(xd, yd)...), append(added, s.minus(yd, xd)...)
			}
			i++
			j++
		}
	}
	return deleted, added
}

// sameRecs reports whether a of x and b of y hold the same records in the
// same order.
func (s *Server) sameRecs(x *shard, a []rec, y *shard, b []rec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !x.sameRec(a[i], y, b[i], s.ttl) {
			return false
		}
	}
	return true
}

// sortKey orders the records of a shard by owner name, type, then input
// position (a stable sort). prefix, the name's first 8 bytes, settles most
// comparisons without reading the name itself.
type sortKey struct {
	prefix uint64
	i      uint32
	t      uint16
}

func namePrefix(name string) uint64 {
	if len(name) >= 8 {
		return uint64(name[0])<<56 | uint64(name[1])<<48 | uint64(name[2])<<40 | uint64(name[3])<<32 |
			uint64(name[4])<<24 | uint64(name[5])<<16 | uint64(name[6])<<8 | uint64(name[7])
	}
	var p uint64
	for i := range 8 {
		p <<= 8
		if i < len(name) {
			p |= uint64(name[i])
		}
	}
	return p
}

// scratch is one worker's reusable memory for newShard.
type scratch struct {
	keys  []sortKey
	names []string // owner of the record at each input position
	rrs   []dns.RR
	recs  []rec
	strs  []string
	mx    string // the MX target put last, interned
	idx   strIndex
	seen  map[string]int
}

// newShard builds a shard from rrs, records of one bucket in any order,
// which it sorts and deduplicates in place (rrs is garbage afterwards).
// Records of one name and type keep their order (the NS records the
// configured one). Each record is read twice, to sort and to encode it:
// its memory is scattered, and reading it is what costs. Empty
// non-terminals are added later, by linkParents.
func (s *Server) newShard(rrs []dns.RR, tmp *scratch) *shard {
	if len(rrs) == 0 {
		return nil
	}
	keys, names := tmp.keys[:0], tmp.names[:0]
	for i, rr := range rrs {
		h := rr.Header()
		keys = append(keys, sortKey{prefix: namePrefix(h.Name), i: uint32(i), t: h.Rrtype})
		names = append(names, h.Name)
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if a.prefix != b.prefix {
			return cmp.Compare(a.prefix, b.prefix)
		}
		if c := strings.Compare(names[a.i], names[b.i]); c != 0 {
			return c
		}
		if a.t != b.t {
			return cmp.Compare(a.t, b.t)
		}
		return cmp.Compare(a.i, b.i)
	})
	if tmp.idx == nil {
		tmp.idx = strIndex{}
	}
	orig := append(tmp.rrs[:0], rrs...)
	distinct, size := 0, 0
	for i, k := range keys {
		rrs[i] = orig[k.i]
		if i == 0 || names[k.i] != names[keys[i-1].i] {
			distinct++
			size += len(names[k.i])
		}
	}
	list := newNameListBuilder(distinct, size)
	sh := &shard{nodes: make([]node, 0, distinct),
		recs: tmp.recs[:0], strs: tmp.strs[:0]} // copied out below, at their exact size
	for start := 0; start < len(rrs); {
		name := names[keys[start].i]
		end, repeated := start+1, false
		for ; end < len(rrs) && names[keys[end].i] == name; end++ {
			repeated = repeated || keys[end].t == keys[end-1].t
		}
		set := rrs[start:end]
		if repeated { // two records of one type: maybe duplicates
			set = s.dedupe(set)
		}
		list.add(name)
		sh.nodes = append(sh.nodes, node{off: uint32(len(sh.recs)), n: uint32(len(set))})
		for _, rr := range set {
			sh.put(rr, &tmp.mx, tmp.idx)
		}
		start = end
	}
	clear(tmp.idx)
	sh.names = list.list()
	tmp.recs, tmp.strs = sh.recs, sh.strs
	sh.recs, sh.strs = slices.Clone(sh.recs), slices.Clone(sh.strs)
	clear(orig)
	clear(names)
	clear(tmp.strs) // the scratch memory keeps no references
	tmp.keys, tmp.names, tmp.rrs = keys, names, orig
	return sh
}

// parentRef designates names[i] of shard b, standing for n names of that
// shard with the same parent, which starts at offset parent in it. It has
// no pointer: linkParents handles millions of them, which the garbage
// collector then neither scans nor tracks through write barriers.
type parentRef struct {
	i      uint32
	n      uint32
	hash   uint32 // of the parent
	b      uint16
	parent uint16 // names are at most 255 octets, 1020 escaped
}

// parentRefs appends to refs the parents of the names of sh (shard b) at
// indexes at (every name for nil), one entry per distinct parent; seen is
// scratch memory. It is called while the shard's names are in the CPU's
// cache.
func (s *Server) parentRefs(refs []parentRef, sh *shard, b int, at []uint32, seen map[string]int) []parentRef {
	clear(seen)
	add := func(i uint32) {
		name := sh.name(int(i))
		if name == s.origin {
			return
		}
		off := parentOffset(name)
		if k, ok := seen[name[off:]]; ok {
			refs[k].n++
			return
		}
		seen[name[off:]] = len(refs)
		refs = append(refs, parentRef{i: i, n: 1, hash: nameHash(name[off:]), b: uint16(b), parent: uint16(off)})
	}
	if at == nil {
		for i := range sh.names.len() {
			add(uint32(i))
		}
	} else {
		for _, i := range at {
			add(i)
		}
	}
	clear(seen) // no references kept from the scratch memory
	return refs
}

// linkParents counts, for every name of z (numShards shards by bucket,
// private to the caller), the existing names directly below it, and adds
// the empty non-terminals: the names between a record's owner and the
// apex that hold no record (RFC 8020). level holds the parents of every
// name (parentRefs). It goes up one level per round: each round sorts the
// parents by their shard, counts them there, and the parents of the new
// empty non-terminals make the next round.
func (s *Server) linkParents(z []*shard, level []parentRef) {
	workers := runtime.GOMAXPROCS(0)
	seen := make([]map[string]int, workers)
	counters := make([]map[string]uint32, workers)
	for w := range seen {
		seen[w], counters[w] = map[string]int{}, map[string]uint32{}
	}
	for len(level) > 0 {
		byShard, start, targets := sortByShard(level)
		// Each target shard changes only below, by one worker, once every
		// parent has been read from the shards as they were: the new
		// shards are put in place after the round.
		type ents struct {
			b  int
			sh *shard
		}
		done := make([][]ents, workers)
		next := make([][]parentRef, workers)
		parallelW(workers, len(targets), func(w, k int) {
			t := targets[k]
			counts := counters[w]
			for _, r := range byShard[start[t]:start[t+1]] {
				counts[z[r.b].name(int(r.i))[r.parent:]] += r.n
			}
			var found []entName
			for p, c := range counts {
				if i, ok := z[t].find(p); ok {
					z[t].addChildren(i, c) // z is still private to the builder; counts are read by no one else
				} else {
					found = append(found, entName{name: p, children: c})
				}
			}
			clear(counts) // no references kept from the scratch memory
			if len(found) == 0 {
				return
			}
			slices.SortFunc(found, func(a, b entName) int { return strings.Compare(a.name, b.name) })
			sh, at := z[t].withENTs(found)
			done[w] = append(done[w], ents{b: t, sh: sh})
			next[w] = s.parentRefs(next[w], sh, t, at, seen[w])
		})
		for _, d := range done {
			for _, e := range d {
				z[e.b] = e.sh
			}
		}
		level = slices.Concat(next...)
	}
}

// sortByShard returns refs ordered by the shard of their parent, where
// each shard's start in that order is, and the shards that have any.
func sortByShard(refs []parentRef) (sorted []parentRef, start []int, targets []int) {
	start = make([]int, numShards+1)
	for _, r := range refs {
		start[r.hash%numShards+1]++
	}
	for t := range numShards {
		if start[t+1] > 0 {
			targets = append(targets, t)
		}
		start[t+1] += start[t]
	}
	sorted = make([]parentRef, len(refs))
	pos := slices.Clone(start)
	for _, r := range refs {
		t := r.hash % numShards
		sorted[pos[t]] = r
		pos[t]++
	}
	return sorted, start, targets
}

// parallel calls fn(0) to fn(n-1) on up to GOMAXPROCS goroutines and
// waits for them.
func parallel(n int, fn func(i int)) {
	parallelW(runtime.GOMAXPROCS(0), n, func(_, i int) { fn(i) })
}

// parallelW calls fn(w, 0) to fn(w, n-1) on up to workers goroutines, w
// being the goroutine's number, and waits for them.
func parallelW(workers, n int, fn func(w, i int)) {
	workers = min(workers, n)
	if workers <= 1 {
		for i := range n {
			fn(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(w, i)
			}
		})
	}
	wg.Wait()
}
