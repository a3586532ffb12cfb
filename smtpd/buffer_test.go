package smtpd

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"testing/iotest"

	"github.com/emersion/go-smtp"
)

func TestMessageReadFrom(t *testing.T) {
	const max = 100 << 10
	tests := []struct {
		name    string
		size    int
		budget  int64
		wantErr error
	}{
		{name: "empty", size: 0, budget: 1 << 20},
		{name: "small", size: 20, budget: 1 << 20},
		{name: "exactly max", size: max, budget: 1 << 20},
		{name: "one over max", size: max + 1, budget: 1 << 20, wantErr: smtp.ErrDataTooLarge},
		{name: "far over max", size: 10 * max, budget: 1 << 20, wantErr: smtp.ErrDataTooLarge},
		{name: "budget smaller than the message", size: max, budget: 64 << 10, wantErr: errBudget},
		{name: "budget just enough without doubling", size: max, budget: max + readChunk, wantErr: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &buffers{max: tt.budget}
			m := b.get()
			in := bytes.Repeat([]byte("x"), tt.size)
			err := m.readFrom(iotest.HalfReader(bytes.NewReader(in)), max) // short reads, as from a socket
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("readFrom = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !bytes.Equal(m.data, in) {
				t.Fatalf("read %d octets, want the %d sent", len(m.data), tt.size)
			}
			if used := b.used.Load(); used > tt.budget || used < int64(cap(m.data)) {
				t.Errorf("accounted %d for a buffer of capacity %d (budget %d)", used, cap(m.data), tt.budget)
			}
			m.release()
			if used := b.used.Load(); used != 0 {
				t.Errorf("%d bytes accounted after release", used)
			}
		})
	}
}

func TestBufferPoolKeepsSmallBuffers(t *testing.T) {
	b := &buffers{max: 64 << 20}
	m := b.get()
	if err := m.readFrom(bytes.NewReader(bytes.Repeat([]byte("y"), 1<<20)), 2<<20); err != nil {
		t.Fatal(err)
	}
	m.release()
	for range 10 {
		m := b.get()
		if c := cap(m.data); c > maxPooledBuffer {
			t.Fatalf("got a pooled buffer of %d bytes, want at most %d", c, maxPooledBuffer)
		}
		m.release()
	}
}

func TestConnCounter(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	c := newConnCounter(3, 2)
	steps := []struct {
		acquire bool
		key     netip.Addr
		want    string
	}{
		{acquire: true, key: a, want: ""},
		{acquire: true, key: a, want: ""},
		{acquire: true, key: a, want: refusedPerIP},
		{acquire: true, key: b, want: ""},
		{acquire: true, key: b, want: refusedTotal},
		{acquire: false, key: a},
		{acquire: true, key: a, want: ""},
		{acquire: true, key: netip.Addr{}, want: refusedTotal},
		{acquire: false, key: b},
		{acquire: true, key: netip.Addr{}, want: ""},
	}
	for i, s := range steps {
		if !s.acquire {
			c.release(s.key)
			continue
		}
		if got := c.acquire(s.key); got != s.want {
			t.Fatalf("step %d: acquire(%v) = %q, want %q", i, s.key, got, s.want)
		}
	}
	if n := c.open(); n != 3 {
		t.Errorf("open = %d, want 3", n)
	}
}

func TestParseProxyFrom(t *testing.T) {
	tests := []struct {
		list    []string
		addr    string
		want    bool
		wantErr bool
	}{
		{list: nil, addr: "127.0.0.1", want: false},
		{list: []string{"10.0.0.5"}, addr: "10.0.0.5", want: true},
		{list: []string{"10.0.0.5"}, addr: "10.0.0.6", want: false},
		{list: []string{"10.0.0.0/8"}, addr: "10.200.0.1", want: true},
		{list: []string{"10.0.0.0/8"}, addr: "::ffff:10.1.2.3", want: true},
		{list: []string{"2001:db8::/32"}, addr: "2001:db8:1::1", want: true},
		{list: []string{"10.0.0.1/8"}, addr: "10.9.9.9", want: true}, // masked
		{list: []string{"proxy.example"}, wantErr: true},
	}
	for _, tt := range tests {
		p, err := parseProxyFrom(tt.list)
		if (err != nil) != tt.wantErr {
			t.Fatalf("parseProxyFrom(%v) error %v, want error %v", tt.list, err, tt.wantErr)
		}
		if err == nil && p.trusts(netip.MustParseAddr(tt.addr)) != tt.want {
			t.Errorf("parseProxyFrom(%v).trusts(%s) = %v, want %v", tt.list, tt.addr, !tt.want, tt.want)
		}
	}
}
