package smtpd

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-smtp"
)

// Message buffers grow with the data actually received, never from a
// declared SIZE, and every byte of their capacity is reserved from a
// daemon-wide budget (Config.MaxBufferedBytes) before it is allocated.
const (
	firstBuffer     = 4 << 10  // capacity of a new buffer
	readChunk       = 64 << 10 // the most read at once
	maxPooledBuffer = 64 << 10 // larger buffers are left to the collector
)

// errBudget is readMessage's error when the daemon-wide budget is spent.
var errBudget = errors.New("smtpd: buffered bytes budget exhausted")

// buffers hands out message buffers and accounts for the bytes they hold.
type buffers struct {
	max  int64
	used atomic.Int64
	pool sync.Pool // *[]byte, capacity at most maxPooledBuffer
}

// reserve takes n bytes from the budget, or reports that it cannot.
func (b *buffers) reserve(n int64) bool {
	for {
		cur := b.used.Load()
		if cur+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// message is one transaction's buffer: data and the budget it holds.
type message struct {
	b    *buffers
	data []byte
	held int64
}

// get returns an empty message buffer, its capacity reserved; nil when the
// budget cannot cover even that.
func (b *buffers) get() *message {
	var data []byte
	if p, ok := b.pool.Get().(*[]byte); ok {
		data = (*p)[:0]
	} else {
		data = make([]byte, 0, firstBuffer)
	}
	if !b.reserve(int64(cap(data))) {
		b.recycle(data)
		return nil
	}
	return &message{b: b, data: data, held: int64(cap(data))}
}

// len is the number of octets received (0 for a nil message).
func (m *message) len() int {
	if m == nil {
		return 0
	}
	return len(m.data)
}

// release returns m's budget and keeps a small buffer for reuse; the relay
// has finished with it (Send is synchronous and keeps nothing).
func (m *message) release() {
	if m == nil {
		return
	}
	m.b.used.Add(-m.held)
	m.held = 0
	m.b.recycle(m.data)
	m.data = nil
}

func (b *buffers) recycle(data []byte) {
	if cap(data) <= maxPooledBuffer {
		data = data[:0]
		b.pool.Put(&data)
	}
}

// grow makes room for more data: it doubles the capacity (never beyond
// limit octets) or, when the budget cannot cover that, adds one chunk;
// false when the budget cannot cover even that.
func (m *message) grow(limit int) bool {
	newCap := min(max(2*cap(m.data), len(m.data)+readChunk/4), limit)
	delta := int64(newCap - cap(m.data))
	if !m.b.reserve(delta) {
		newCap = min(len(m.data)+readChunk, limit)
		delta = int64(newCap - cap(m.data))
		if !m.b.reserve(delta) {
			return false
		}
	}
	next := make([]byte, len(m.data), newCap)
	copy(next, m.data)
	m.data = next
	m.held += delta
	return true
}

// readFrom reads r to EOF, at most readChunk octets per read (each read of
// the connection renews its deadline), and stops once more than max octets
// arrived: it then returns smtp.ErrDataTooLarge. errBudget means the
// daemon-wide budget could not grow the buffer.
func (m *message) readFrom(r io.Reader, max int64) error {
	// One octet over the limit is kept, to tell "exactly max" from "more".
	limit := int(max) + 1
	for {
		if len(m.data) >= limit {
			return smtp.ErrDataTooLarge
		}
		if cap(m.data)-len(m.data) < 512 && !m.grow(limit) {
			return errBudget
		}
		end := min(cap(m.data), len(m.data)+readChunk, limit)
		n, err := r.Read(m.data[len(m.data):end])
		m.data = m.data[:len(m.data)+n]
		switch {
		case err == io.EOF:
			if len(m.data) > int(max) {
				return smtp.ErrDataTooLarge
			}
			return nil
		case err != nil:
			return err
		}
	}
}
