package smtpd

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sendergate/sendergate/internal/clocktest"
)

func TestAuthLimiter(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	v6a := netip.MustParseAddr("2001:db8:1:2::1")
	v6b := netip.MustParseAddr("2001:db8:1:2:ffff::7") // same /64
	v6c := netip.MustParseAddr("2001:db8:1:3::1")      // another /64
	tests := []struct {
		name  string
		steps func(l *authLimiter, c *clocktest.Clock)
		ip    netip.Addr
		want  bool
	}{
		{name: "four failures do not block", ip: a, want: false, steps: func(l *authLimiter, c *clocktest.Clock) {
			fail(l, a, 4)
		}},
		{name: "five failures block", ip: a, want: true, steps: func(l *authLimiter, c *clocktest.Clock) {
			fail(l, a, 5)
		}},
		{name: "other addresses are not blocked", ip: b, want: false, steps: func(l *authLimiter, c *clocktest.Clock) {
			fail(l, a, 5)
		}},
		{name: "the block lasts five minutes", ip: a, want: true, steps: func(l *authLimiter, c *clocktest.Clock) {
			fail(l, a, 5)
			c.Add(authBlock - time.Second)
		}},
		{name: "the block ends after five minutes", ip: a, want: false, steps: func(l *authLimiter, c *clocktest.Clock) {
			fail(l, a, 5)
			c.Add(authBlock)
		}},
		{name: "failures older than the window do not count", ip: a, want: false, steps: func(l *authLimiter, c *clocktest.Clock) {
			fail(l, a, 3)
			c.Add(authWindow)
			fail(l, a, 2)
		}},
		{name: "failures within the window add up", ip: a, want: true, steps: func(l *authLimiter, c *clocktest.Clock) {
			fail(l, a, 3)
			c.Add(authWindow - time.Second)
			fail(l, a, 2)
		}},
		{name: "IPv6 counts per /64", ip: v6b, want: true, steps: func(l *authLimiter, c *clocktest.Clock) {
			fail(l, v6a, 5)
		}},
		{name: "another /64 is not blocked", ip: v6c, want: false, steps: func(l *authLimiter, c *clocktest.Clock) {
			fail(l, v6a, 5)
		}},
		{name: "IPv4-mapped IPv6 is the IPv4 address", ip: a, want: true, steps: func(l *authLimiter, c *clocktest.Clock) {
			fail(l, netip.MustParseAddr("::ffff:192.0.2.1"), 5)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			l := newAuthLimiter(c.Now)
			tt.steps(l, c)
			if got := l.Blocked(tt.ip); got != tt.want {
				t.Errorf("Blocked(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
}

func TestAuthLimiterBoundedMemory(t *testing.T) {
	c := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	l := newAuthLimiter(c.Now)
	for i := range authMaxTracked + 10 {
		l.Fail(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	if n := len(l.entries); n > authMaxTracked {
		t.Fatalf("%d entries tracked, want at most %d", n, authMaxTracked)
	}
	// Once the failures have expired, new addresses are tracked again.
	c.Add(authWindow)
	fresh := netip.MustParseAddr("192.0.2.9")
	fail(l, fresh, 5)
	if !l.Blocked(fresh) {
		t.Error("new address not tracked after the old entries expired")
	}
	if n := len(l.entries); n != 1 {
		t.Errorf("%d entries after the sweep, want 1", n)
	}
}

func fail(l *authLimiter, ip netip.Addr, n int) {
	for range n {
		l.Fail(ip)
	}
}
