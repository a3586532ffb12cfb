package policy

import (
	"hash/maphash"
	"iter"
	"maps"
)

// An index is split into indexGroups groups of groupShards maps, so that a
// change copies one group's pointers and one small map (about 25 entries
// at 100,000 organizations), not the whole map. With one level of 256
// maps, the two indexes' copies were a tenth of what a million-domain
// daemon allocated per added domain.
const (
	indexGroups = 64
	groupShards = 64
	indexShards = indexGroups * groupShards
)

var indexSeed = maphash.MakeSeed()

// index is an immutable map from string to organization view, split into
// shards; a changed copy shares every group and shard it does not touch.
type index struct {
	groups [indexGroups]*indexGroup
	n      int
}

// indexGroup is a group of shards (nil maps are empty).
type indexGroup [groupShards]map[string]*orgView

func shardOfKey(key string) int {
	return int(maphash.String(indexSeed, key) % indexShards)
}

func (x *index) shard(i int) map[string]*orgView {
	if g := x.groups[i/groupShards]; g != nil {
		return g[i%groupShards]
	}
	return nil
}

func (x *index) get(key string) (*orgView, bool) {
	o, ok := x.shard(shardOfKey(key))[key]
	return o, ok
}

func (x *index) len() int { return x.n }

// all yields every view once.
func (x *index) all() iter.Seq[*orgView] {
	return func(yield func(*orgView) bool) {
		for _, g := range x.groups {
			if g == nil {
				continue
			}
			for _, m := range g {
				for _, o := range m {
					if !yield(o) {
						return
					}
				}
			}
		}
	}
}

// indexWriter makes a changed copy of an index: the first write to a
// group copies its pointers, the first write to a shard copies that
// shard's map; later ones write to the copies.
type indexWriter struct {
	x      *index
	groups [indexGroups]bool
	copied map[int]bool // shards copied
}

// edit returns a writer over a copy of prev (nil: an empty index) that
// shares every group and shard until it is written.
func edit(prev *index) *indexWriter {
	w := &indexWriter{x: &index{}, copied: map[int]bool{}}
	if prev != nil {
		*w.x = *prev
	}
	return w
}

func (w *indexWriter) shard(key string) map[string]*orgView {
	i := shardOfKey(key)
	gi := i / groupShards
	if !w.groups[gi] {
		g := new(indexGroup)
		if old := w.x.groups[gi]; old != nil {
			*g = *old
		}
		w.x.groups[gi], w.groups[gi] = g, true
	}
	g := w.x.groups[gi]
	if !w.copied[i] {
		g[i%groupShards] = maps.Clone(g[i%groupShards])
		if g[i%groupShards] == nil {
			g[i%groupShards] = make(map[string]*orgView)
		}
		w.copied[i] = true
	}
	return g[i%groupShards]
}

func (w *indexWriter) put(key string, o *orgView) {
	m := w.shard(key)
	if _, ok := m[key]; !ok {
		w.x.n++
	}
	m[key] = o
}

func (w *indexWriter) del(key string) {
	m := w.shard(key)
	if _, ok := m[key]; ok {
		delete(m, key)
		w.x.n--
	}
}
