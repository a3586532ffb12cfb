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

// compareRR orders records by owner name, then type.
func compareRR(a, b dns.RR) int {
	ha, hb := a.Header(), b.Header()
	if c := strings.Compare(ha.Name, hb.Name); c != 0 {
		return c
	}
	return cmp.Compare(ha.Rrtype, hb.Rrtype)
}

// newShard builds a shard from rrs, records of one bucket in any order,
// which it sorts and deduplicates in place. Empty non-terminals are added
// later, by linkParents.
func (s *Server) newShard(rrs []dns.RR) *shard {
	if len(rrs) == 0 {
		return nil
	}
	// Stable: records of one name and type keep the caller's order (the NS
	// records keep the configured order).
	slices.SortStableFunc(rrs, compareRR)
	names := 1
	for i := 1; i < len(rrs); i++ {
		if rrs[i].Header().Name != rrs[i-1].Header().Name {
			names++
		}
	}
	sh := &shard{names: make([]string, 0, names), nodes: make([]node, 0, names)}
	kept := rrs[:0]
	for start := 0; start < len(rrs); {
		name := rrs[start].Header().Name
		end := start + 1
		for end < len(rrs) && rrs[end].Header().Name == name {
			end++
		}
		set := s.dedupe(rrs[start:end])
		sh.names = append(sh.names, name)
		sh.nodes = append(sh.nodes, node{off: uint32(len(kept)), n: uint32(len(set))})
		kept = append(kept, set...) // never past end: set is a prefix of rrs[start:end]
		start = end
	}
	clear(rrs[len(kept):]) // duplicates dropped: no stale references
	sh.rrs = slices.Clip(kept)
	return sh
}

// linkParents counts, for every name of z, the existing names directly
// below it, and adds the empty non-terminals: the names between a record's
// owner and the apex that hold no record (RFC 8020).
func (s *Server) linkParents(z *shards) {
	children := make(map[string]uint32)
	var addChild func(name string)
	addChild = func(name string) {
		if name == s.origin {
			return
		}
		p := parentName(name)
		c := children[p]
		children[p] = c + 1
		if c == 0 && !z.hasRecords(p) {
			addChild(p) // p is a new empty non-terminal: it exists too
		}
	}
	for _, sh := range z {
		if sh == nil {
			continue
		}
		for _, name := range sh.names {
			addChild(name)
		}
	}
	ents := make([][]nameChange, numShards)
	for name, c := range children {
		b := shardOf(name)
		if i, ok := z[b].find(name); ok {
			z[b].nodes[i].children = c // z is still private to the builder
			continue
		}
		ents[b] = append(ents[b], nameChange{name: name, children: c})
	}
	parallel(numShards, func(b int) {
		if len(ents[b]) > 0 {
			slices.SortFunc(ents[b], func(a, b nameChange) int { return strings.Compare(a.name, b.name) })
			z[b] = z[b].apply(ents[b])
		}
	})
}

// parentName returns the name one label up from name (a FQDN below the
// apex).
func parentName(name string) string {
	off, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[off:]
}

// parallel calls fn(0) to fn(n-1) on up to GOMAXPROCS goroutines and
// waits for them.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}
