package zone

import (
	"slices"

	"github.com/miekg/dns"
)

// buildChunk is the number of input records one worker of build accepts
// at a time.
const buildChunk = 64 * 1024

// build returns the shards of a zone holding the generated records (apex
// NS, configured addresses) and rrs. Records are accepted and sorted on
// every core; the only full-size temporary is one slice of the accepted
// records.
func (s *Server) build(rrs []dns.RR) *shards {
	fixed := len(s.fixed)
	total := fixed + len(rrs)
	acc := make([]dns.RR, total)
	bucket := make([]uint16, total)
	chunks := (total + buildChunk - 1) / buildChunk
	counts := make([][numShards]uint32, chunks)
	parallel(chunks, func(c int) {
		for i := c * buildChunk; i < min(total, (c+1)*buildChunk); i++ {
			var rr dns.RR
			if i < fixed {
				rr = s.fixed[i]
			} else {
				rr = s.accept(rrs[i-fixed])
			}
			if rr == nil {
				continue
			}
			b := shardOf(rr.Header().Name)
			acc[i], bucket[i] = rr, uint16(b)
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
			if rr := acc[i]; rr != nil {
				b := bucket[i]
				buckets[b][counts[c][b]] = rr
				counts[c][b]++
			}
		}
	})
	acc, bucket = nil, nil
	z := new(shards)
	parallel(numShards, func(b int) { z[b] = s.newShard(buckets[b]) })
	s.linkParents(z)
	return z
}

// diffShards returns the records of old missing from next and those of
// next missing from old. Shards of next equal to old's are replaced by
// old's, so the records already served stay and the new copies go.
func (s *Server) diffShards(old, next *shards) (deleted, added []dns.RR) {
	type result struct{ deleted, added []dns.RR }
	results := make([]result, numShards)
	parallel(numShards, func(b int) {
		var same bool
		r := &results[b]
		r.deleted, r.added, same = s.diffShard(old[b], next[b])
		if same {
			next[b] = old[b]
		}
	})
	for _, r := range results {
		deleted = append(deleted, r.deleted...)
		added = append(added, r.added...)
	}
	return deleted, added
}

// diffShard compares two versions of one shard (nil: empty). same also
// requires equal counts of children, which depend on other shards.
func (s *Server) diffShard(a, b *shard) (deleted, added []dns.RR, same bool) {
	var x, y shard
	if a != nil {
		x = *a
	}
	if b != nil {
		y = *b
	}
	same = len(x.names) == len(y.names)
	i, j := 0, 0
	for i < len(x.names) || j < len(y.names) {
		switch {
		case j == len(y.names) || i < len(x.names) && x.names[i] < y.names[j]:
			deleted = append(deleted, x.records(i)...)
			same = false
			i++
		case i == len(x.names) || y.names[j] < x.names[i]:
			added = append(added, y.records(j)...)
			same = false
			j++
		default:
			xr, yr := x.records(i), y.records(j)
			if !slices.EqualFunc(xr, yr, s.same) {
				d, a := s.minus(xr, yr), s.minus(yr, xr)
				deleted, added = append(deleted, d...), append(added, a...)
				same = same && len(d) == 0 && len(a) == 0 // reordered only
			}
			same = same && x.nodes[i].children == y.nodes[j].children
			i++
			j++
		}
	}
	return deleted, added, same
}
