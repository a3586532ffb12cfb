package loader

import (
	"strings"
	"unsafe"
)

// arenaChunk is the size of one allocation of an arena.
const arenaChunk = 1 << 20

// arena hands out strings carved from large chunks. A full load makes a
// few strings per domain that the snapshot keeps (2.2 million at a million
// domains) among ten times as many that it drops: allocated one by one,
// the kept ones ended up scattered over half-empty pages of the heap that
// the runtime can never give back (150 MB at a million domains). From an
// arena they fill whole chunks. A chunk lives as long as any of its
// strings, so an arena is for a full load, whose strings live together.
type arena struct {
	buf []byte // the current chunk's free part
}

// concat returns parts joined, as one string of the arena (nil: of its
// own allocation).
func (a *arena) concat(parts ...string) string {
	if a == nil {
		return strings.Join(parts, "")
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n == 0 {
		return ""
	}
	if n > arenaChunk/8 { // a string too large to share a chunk
		b := make([]byte, 0, n)
		for _, p := range parts {
			b = append(b, p...)
		}
		return unsafe.String(&b[0], n)
	}
	if len(a.buf) < n {
		a.buf = make([]byte, arenaChunk)
	}
	b := a.buf[:0:n]
	for _, p := range parts {
		b = append(b, p...)
	}
	a.buf = a.buf[n:]
	// The bytes are never written again: the next string starts after them.
	return unsafe.String(&b[0], n)
}

// copyOf returns a copy of b, as a string of the arena (nil: of its own
// allocation).
func (a *arena) copyOf(b []byte) string {
	if a == nil {
		return string(b)
	}
	return a.concat(unsafe.String(unsafe.SliceData(b), len(b)))
}
