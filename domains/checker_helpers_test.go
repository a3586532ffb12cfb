package domains

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Test parts of the background checker's tests: real DNS servers in front
// of, or instead of, the customer's, and the rate limiter's clock.

// queryCounter is a DNS forwarder in front of the customer's server that
// counts the questions passing through it by name: what the customer's
// resolver sees of the checks.
type queryCounter struct {
	addr string
	mu   sync.Mutex
	n    map[string]int
}

func newQueryCounter(t *testing.T, upstream string) *queryCounter {
	t.Helper()
	q := &queryCounter{n: map[string]int{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	q.addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		q.mu.Lock()
		q.n[dns.CanonicalName(req.Question[0].Name)]++
		q.mu.Unlock()
		resp, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(req, upstream)
		if err != nil {
			resp = new(dns.Msg)
			resp.SetRcode(req, dns.RcodeServerFailure)
		}
		_ = w.WriteMsg(resp)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return q
}

// Count is the number of questions asked for name.
func (q *queryCounter) Count(name string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n[dns.CanonicalName(name)]
}

// Total is the number of questions asked.
func (q *queryCounter) Total() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, c := range q.n {
		n += c
	}
	return n
}

// limitClock is the rate limiter's clock in a test: waiting until a time
// moves it there at once, so the test sees when each query was allowed.
type limitClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *limitClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *limitClock) waitUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.t) {
		c.t = t
	}
	return ctx.Err()
}

// timedResolver notes the limiter's time at each question.
type timedResolver struct {
	r     Resolver
	clock *limitClock
	mu    sync.Mutex
	at    []time.Time
}

func (r *timedResolver) note() {
	r.mu.Lock()
	r.at = append(r.at, r.clock.Now())
	r.mu.Unlock()
}

func (r *timedResolver) LookupCNAME(ctx context.Context, host string) (Answer, error) {
	r.note()
	return r.r.LookupCNAME(ctx, host)
}

func (r *timedResolver) Lookup(ctx context.Context, name, typ string) (Data, error) {
	r.note()
	return r.r.Lookup(ctx, name, typ)
}

// blackhole is a UDP DNS server that never answers; queried is closed at
// the first question.
func blackhole(t *testing.T) (addr string, queried <-chan struct{}) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	ch := make(chan struct{})
	go func() {
		var once sync.Once
		buf := make([]byte, 1500)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			once.Do(func() { close(ch) })
		}
	}()
	return pc.LocalAddr().String(), ch
}
