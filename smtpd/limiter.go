package smtpd

import (
	"net/netip"
	"sync"
	"time"
)

// The failed-AUTH limit of the spec: five failures from one address within
// five minutes block further AUTH attempts from it for five minutes.
const (
	authMaxFailures = 5
	authWindow      = 5 * time.Minute
	authBlock       = 5 * time.Minute
	// authMaxTracked bounds the limiter's memory (about 100 bytes per
	// entry). When it is full of live entries, new addresses are not
	// tracked until entries expire.
	authMaxTracked = 100_000
)

// authLimiter counts failed AUTH attempts per client address. IPv6
// clients are counted per /64, the smallest block a site usually gets, so
// rotating through one's own addresses does not evade the limit.
type authLimiter struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[netip.Addr]*authEntry
}

type authEntry struct {
	failures     []time.Time // within the window, oldest first
	blockedUntil time.Time
}

func newAuthLimiter(now func() time.Time) *authLimiter {
	return &authLimiter{now: now, entries: make(map[netip.Addr]*authEntry)}
}

// limiterKey returns the map key for a: the address for IPv4, its /64
// for IPv6. ok is false for an invalid address (never limited).
func limiterKey(a netip.Addr) (netip.Addr, bool) {
	if !a.IsValid() {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr(), true
	}
	return a, true
}

// Blocked reports whether AUTH from ip is refused now.
func (l *authLimiter) Blocked(ip netip.Addr) bool {
	key, ok := limiterKey(ip)
	if !ok {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	return e != nil && l.now().Before(e.blockedUntil)
}

// Fail records a failed AUTH from ip and reports whether ip is now blocked.
func (l *authLimiter) Fail(ip netip.Addr) bool {
	key, ok := limiterKey(ip)
	if !ok {
		return false
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		if len(l.entries) >= authMaxTracked && !l.sweep(now) {
			return false
		}
		e = &authEntry{}
		l.entries[key] = e
	}
	e.expire(now)
	e.failures = append(e.failures, now)
	if len(e.failures) >= authMaxFailures {
		e.blockedUntil = now.Add(authBlock)
		e.failures = e.failures[:0]
		return true
	}
	return false
}

// expire drops failures older than the window.
func (e *authEntry) expire(now time.Time) {
	i := 0
	for i < len(e.failures) && now.Sub(e.failures[i]) >= authWindow {
		i++
	}
	e.failures = append(e.failures[:0], e.failures[i:]...)
}

// sweep removes entries with neither recent failures nor a block and
// reports whether room was made.
func (l *authLimiter) sweep(now time.Time) bool {
	for k, e := range l.entries {
		e.expire(now)
		if len(e.failures) == 0 && !now.Before(e.blockedUntil) {
			delete(l.entries, k)
		}
	}
	return len(l.entries) < authMaxTracked
}
