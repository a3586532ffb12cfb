// Package clocktest provides a settable clock for tests of code that reads
// the time through an injected func() time.Time (the Now options of the
// domains, addresses, admin and policy packages).
package clocktest

import (
	"sync"
	"time"
)

// Clock is a time source that moves only when the test moves it. It is
// safe for concurrent use; the zero value reads as the zero time.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a Clock that reads t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time; pass c.Now where code wants a time source.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t, backwards or forwards.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
