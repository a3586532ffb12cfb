package zone

import (
	"runtime"

	"github.com/miekg/dns"
)

// buildChunk is the number of input records one worker of bucketize
// accepts at a time.
const buildChunk = 64 * 1024

// build returns the shards of a zone holding the generated records (apex
// NS, configured addresses) and rrs: the first load, on every core.
func (s *Server) build(rrs []dns.RR) *shards {
	buckets := s.bucketize(rrs)
	z := new(shards)
	tmp := make([]scratch, runtime.GOMAXPROCS(0))
	parallelW(len(tmp), numShards, func(w, b int) {
		z[b] = s.newShard(buckets[b], &tmp[w])
		buckets[b] = nil
	})
	s.linkParents(z)
	return z
}

// diffFull returns the records cur holds that the zone of the generated
// records and rrs lacks, and those it holds that cur lacks: a full reload
// as a change. Each shard of the new zone is built, compared with cur's and
// dropped, so the whole new zone never exists at once.
func (s *Server) diffFull(cur *shards, rrs []dns.RR) (deleted, added []dns.RR) {
	buckets := s.bucketize(rrs)
	type result struct{ deleted, added []dns.RR }
	results := make([]result, numShards)
	tmp := make([]scratch, runtime.GOMAXPROCS(0))
	parallelW(len(tmp), numShards, func(w, b int) {
		next := s.newShard(buckets[b], &tmp[w])
		buckets[b] = nil
		r := &results[b]
		r.deleted, r.added = s.diffShard(cur[b], next)
	})
	for _, r := range results {
		deleted = append(deleted, r.deleted...)
		added = append(added, r.added...)
	}
	return deleted, added
}

// bucketize accepts the generated records and rrs and returns them by
// shard, in no particular order. Records are accepted on every core; the
// temporaries are one slice of the accepted records and their shards.
func (s *Server) bucketize(rrs []dns.RR) [][]dns.RR {
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
	for i < len(x.names) || j < len(y.names) {
		switch {
		case j == len(y.names) || i < len(x.names) && x.names[i] < y.names[j]:
			deleted = append(deleted, x.records(i)...)
			i++
		case i == len(x.names) || y.names[j] < x.names[i]:
			added = append(added, y.records(j)...)
			j++
		default:
			xr, yr := x.records(i), y.records(j)
			if len(xr) != len(yr) || !s.sameRecords(xr, yr) {
				deleted, added = append(deleted, s.minus(xr, yr)...), append(added, s.minus(yr, xr)...)
			}
			i++
			j++
		}
	}
	return deleted, added
}

// sameRecords reports whether a and b, of equal length, hold the same
// records in the same order.
func (s *Server) sameRecords(a, b []dns.RR) bool {
	for i := range a {
		if !s.same(a[i], b[i]) {
			return false
		}
	}
	return true
}
