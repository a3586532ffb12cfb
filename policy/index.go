package policy

import (
	"hash/maphash"
	"iter"
	"maps"
)

// indexShards splits an index so that a change copies one shard's map
// (about 400 entries at 100,000 organizations) instead of the whole map.
const indexShards = 256

var indexSeed = maphash.MakeSeed()

// index is an immutable map from string to organization view, split into
// shards; a changed copy shares every shard it does not touch.
type index struct {
	shards [indexShards]map[string]*orgView
	n      int
}

func shardOfKey(key string) int {
	return int(maphash.String(indexSeed, key) % indexShards)
}

func (x *index) get(key string) (*orgView, bool) {
	m := x.shards[shardOfKey(key)]
	o, ok := m[key]
	return o, ok
}

func (x *index) len() int { return x.n }

// all yields every view once.
func (x *index) all() iter.Seq[*orgView] {
	return func(yield func(*orgView) bool) {
		for _, m := range x.shards {
			for _, o := range m {
				if !yield(o) {
					return
				}
			}
		}
	}
}

// indexWriter makes a changed copy of an index: the first write to a
// shard copies that shard's map, later ones write to the copy.
type indexWriter struct {
	x      *index
	copied [indexShards]bool
}

// edit returns a writer over a copy of prev (nil: an empty index) that
// shares every shard until it is written.
func edit(prev *index) *indexWriter {
	w := &indexWriter{x: &index{}}
	if prev != nil {
		*w.x = *prev
	}
	return w
}

func (w *indexWriter) shard(key string) map[string]*orgView {
	i := shardOfKey(key)
	if !w.copied[i] {
		w.x.shards[i] = maps.Clone(w.x.shards[i])
		if w.x.shards[i] == nil {
			w.x.shards[i] = make(map[string]*orgView)
		}
		w.copied[i] = true
	}
	return w.x.shards[i]
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
