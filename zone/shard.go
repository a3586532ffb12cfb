package zone

import (
	"cmp"
	"iter"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// numShards is the number of parts the zone's names are split into, by a
// hash of the owner name. A Patch copies only the shards it touches: at a
// million customer domains (about four million names) a shard holds about
// a thousand names, so a change copies a few tens of kilobytes.
const numShards = 4096

// shards is the whole zone's data: one immutable shard per hash bucket,
// nil when no name of the zone falls in it. A snapshot holds a pointer to
// one; a change copies the array and replaces the shards it touched.
type shards [numShards]*shard

// shard holds the names of one hash bucket. It is never modified once
// published: a change builds a new shard.
type shard struct {
	names []string // sorted; every name of the bucket that exists
	nodes []node   // nodes[i] describes names[i]
	rrs   []dns.RR // the records, grouped by name in names order, by type within a name
}

// node is one name of a shard. A name with no record exists when names
// below it do: an empty non-terminal, which answers NODATA (RFC 8020).
type node struct {
	off, n   uint32 // the name's records: rrs[off : off+n]
	children uint32 // names directly below this one that exist, in any shard
}

// shardOf returns the bucket of name, a lowercase FQDN (FNV-1a).
func shardOf(name string) int {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return int(h % numShards)
}

// find returns the index of name in sh.
func (sh *shard) find(name string) (int, bool) {
	if sh == nil {
		return 0, false
	}
	return slices.BinarySearch(sh.names, name)
}

// records returns the records of sh.names[i]; the caller must not modify
// the slice.
func (sh *shard) records(i int) []dns.RR {
	nd := sh.nodes[i]
	return sh.rrs[nd.off : nd.off+nd.n : nd.off+nd.n]
}

// lookup returns the records of name (a lowercase FQDN) and its node, and
// whether the name exists.
func (z *shards) lookup(name string) ([]dns.RR, node, bool) {
	sh := z[shardOf(name)]
	i, ok := sh.find(name)
	if !ok {
		return nil, node{}, false
	}
	return sh.records(i), sh.nodes[i], true
}

// hasRecords reports whether name holds at least one record.
func (z *shards) hasRecords(name string) bool {
	rrs, _, _ := z.lookup(name)
	return len(rrs) > 0
}

// all yields every record of the zone, shard by shard.
func (z *shards) all() iter.Seq[dns.RR] {
	return func(yield func(dns.RR) bool) {
		for _, sh := range z {
			if sh == nil {
				continue
			}
			for _, rr := range sh.rrs {
				if !yield(rr) {
					return
				}
			}
		}
	}
}

// count returns the number of records in z.
func (z *shards) count() int {
	n := 0
	for _, sh := range z {
		if sh != nil {
			n += len(sh.rrs)
		}
	}
	return n
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
	extra := 0
	for _, c := range changes {
		extra += len(c.rrs)
	}
	out := &shard{
		names: make([]string, 0, len(old.names)+len(changes)),
		nodes: make([]node, 0, len(old.names)+len(changes)),
		rrs:   make([]dns.RR, 0, len(old.rrs)+extra),
	}
	emit := func(name string, rrs []dns.RR, children uint32) {
		if len(rrs) == 0 && children == 0 {
			return
		}
		out.names = append(out.names, name)
		out.nodes = append(out.nodes, node{off: uint32(len(out.rrs)), n: uint32(len(rrs)), children: children})
		out.rrs = append(out.rrs, rrs...)
	}
	i := 0
	for _, c := range changes {
		for ; i < len(old.names) && old.names[i] < c.name; i++ {
			emit(old.names[i], old.records(i), old.nodes[i].children)
		}
		if i < len(old.names) && old.names[i] == c.name {
			i++
		}
		emit(c.name, c.rrs, c.children)
	}
	for ; i < len(old.names); i++ {
		emit(old.names[i], old.records(i), old.nodes[i].children)
	}
	if len(out.names) == 0 {
		return nil
	}
	return out
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
}

// newShard builds a shard from rrs, records of one bucket in any order,
// which it sorts and deduplicates in place. Records of one name and type
// keep their order (the NS records the configured one). Each record is
// read once: its memory is scattered, and reading it is what costs.
// Empty non-terminals are added later, by linkParents.
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
	orig := append(tmp.rrs[:0], rrs...)
	distinct := 0
	for i, k := range keys {
		rrs[i] = orig[k.i]
		if i == 0 || names[k.i] != names[keys[i-1].i] {
			distinct++
		}
	}
	sh := &shard{names: make([]string, 0, distinct), nodes: make([]node, 0, distinct)}
	kept := rrs[:0]
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
		sh.names = append(sh.names, name)
		sh.nodes = append(sh.nodes, node{off: uint32(len(kept)), n: uint32(len(set))})
		kept = append(kept, set...) // never past end: set is a prefix of rrs[start:end]
		start = end
	}
	clear(rrs[len(kept):]) // duplicates dropped: no stale references
	clear(orig)
	clear(names) // the scratch memory keeps no references
	tmp.keys, tmp.names, tmp.rrs = keys, names, orig
	sh.rrs = slices.Clip(kept)
	return sh
}

// parentRef designates names[i] of shard b, n names whose parent starts
// at offset parent in it, without a pointer: linkParents writes millions
// of them, which the garbage collector then neither scans nor tracks
// through write barriers.
type parentRef struct {
	i      uint32
	n      uint32
	b      uint16
	parent uint16 // names are at most 255 octets, 1020 escaped
}

// linkParents counts, for every name of z, the existing names directly
// below it, and adds the empty non-terminals: the names between a record's
// owner and the apex that hold no record (RFC 8020). It goes up one level
// per round: each round sends the names found in the previous one to the
// shards of their parents, where the parents are counted.
func (s *Server) linkParents(z *shards) {
	level := make([][]uint32, numShards) // by shard: indexes of names whose parent is to be counted
	for b, sh := range z {
		if sh != nil {
			level[b] = make([]uint32, len(sh.names))
			for i := range level[b] {
				level[b][i] = uint32(i)
			}
		}
	}
	workers := runtime.GOMAXPROCS(0)
	for {
		// out[w][t]: the names whose parent is in shard t, found by worker
		// w; consecutive names with the same parent (most go to a few
		// parents: bounce.ZONE, dmarc.ZONE) are counted in one entry.
		out := make([][][]parentRef, workers)
		for w := range out {
			out[w] = make([][]parentRef, numShards)
		}
		parallelW(workers, numShards, func(w, b int) {
			for _, i := range level[b] {
				name := z[b].names[i]
				if name == s.origin {
					continue
				}
				off := parentOffset(name)
				t := shardOf(name[off:])
				refs := out[w][t]
				if k := len(refs) - 1; k >= 0 {
					last := refs[k]
					if p := z[last.b].names[last.i]; p[last.parent:] == name[off:] {
						refs[k].n++
						continue
					}
				}
				out[w][t] = append(refs, parentRef{i: i, n: 1, b: uint16(b), parent: uint16(off)})
			}
		})
		// Each shard changes only below, by one worker, once every name
		// of out has been read from the shards as they were.
		old := *z
		next := make([][]uint32, numShards)
		var more atomic.Bool
		parallel(numShards, func(t int) {
			n := 0
			for w := range out {
				n += len(out[w][t])
			}
			if n == 0 {
				return
			}
			counts := make(map[string]uint32, n)
			for w := range out {
				for _, r := range out[w][t] {
					counts[old[r.b].names[r.i][r.parent:]] += r.n
				}
			}
			ents := make([]entName, 0, len(counts))
			for p, c := range counts {
				if i, ok := z[t].find(p); ok {
					z[t].nodes[i].children += c // z is still private to the builder
				} else {
					ents = append(ents, entName{name: p, children: c})
				}
			}
			if len(ents) == 0 {
				return
			}
			slices.SortFunc(ents, func(a, b entName) int { return strings.Compare(a.name, b.name) })
			z[t], next[t] = z[t].withENTs(ents)
			more.Store(true)
		})
		if !more.Load() {
			return
		}
		level = next
	}
}

// entName is an empty non-terminal found by linkParents.
type entName struct {
	name     string
	children uint32
}

// withENTs returns sh (nil: empty) with the empty non-terminals ents,
// sorted and not in sh, merged in, and their indexes in the result. The
// records are shared with sh.
func (sh *shard) withENTs(ents []entName) (*shard, []uint32) {
	var old shard
	if sh != nil {
		old = *sh
	}
	n := len(old.names) + len(ents)
	out := &shard{names: make([]string, 0, n), nodes: make([]node, 0, n), rrs: old.rrs}
	at := make([]uint32, 0, len(ents))
	i := 0
	for _, e := range ents {
		for ; i < len(old.names) && old.names[i] < e.name; i++ {
			out.names, out.nodes = append(out.names, old.names[i]), append(out.nodes, old.nodes[i])
		}
		off := uint32(len(old.rrs))
		if i < len(old.nodes) {
			off = old.nodes[i].off
		}
		at = append(at, uint32(len(out.names)))
		out.names, out.nodes = append(out.names, e.name), append(out.nodes, node{off: off, children: e.children})
	}
	out.names, out.nodes = append(out.names, old.names[i:]...), append(out.nodes, old.nodes[i:]...)
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
