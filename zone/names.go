package zone

import "strings"

// nameList is a sorted list of names kept in one string: name i is
// data[end[i-1]:end[i]]. A million domains are some four million names; as
// separate strings each cost a 16-byte header and its allocation's
// rounding besides its octets, and kept the caller's strings (and the
// records they came in) alive.
type nameList struct {
	data string
	end  []uint32
}

// len returns the number of names.
func (l *nameList) len() int { return len(l.end) }

// at returns name i.
func (l *nameList) at(i int) string {
	start := uint32(0)
	if i > 0 {
		start = l.end[i-1]
	}
	return l.data[start:l.end[i]]
}

// search returns where name is or would be in l, at lo or after, and
// whether it is there.
func (l *nameList) search(lo int, name string) (int, bool) {
	i, j := lo, len(l.end)
	for i < j {
		h := int(uint(i+j) >> 1)
		if l.at(h) < name {
			i = h + 1
		} else {
			j = h
		}
	}
	return i, i < len(l.end) && l.at(i) == name
}

// nameListBuilder makes a nameList from names added in order.
type nameListBuilder struct {
	data strings.Builder // String does not copy
	end  []uint32
}

// newNameListBuilder returns a builder with room for n names of size
// octets in all.
func newNameListBuilder(n, size int) *nameListBuilder {
	b := &nameListBuilder{end: make([]uint32, 0, n)}
	b.data.Grow(size)
	return b
}

// add appends name, which sorts after every name added before.
func (b *nameListBuilder) add(name string) {
	b.data.WriteString(name)
	b.end = append(b.end, uint32(b.data.Len()))
}

// list returns the names added (the builder is not to be used after).
func (b *nameListBuilder) list() nameList {
	if len(b.end) == 0 {
		return nameList{}
	}
	return nameList{data: b.data.String(), end: b.end[:len(b.end):len(b.end)]}
}
