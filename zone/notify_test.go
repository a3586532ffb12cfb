package zone

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// secondary plays a secondary's NOTIFY listener on a UDP loopback port: it
// records each NOTIFY and answers it as reply says.
type secondary struct {
	addr string

	mu       sync.Mutex
	received []*dns.Msg
	// reply returns the answer to the n-th NOTIFY (1-based), or nil to stay
	// silent. It may block.
	reply func(n int, r *dns.Msg) *dns.Msg
}

// ack is the proper answer to a NOTIFY (RFC 1996 4.7).
func ack(_ int, r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	return m
}

func newSecondary(t *testing.T, reply func(n int, r *dns.Msg) *dns.Msg) *secondary {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sec := &secondary{addr: pc.LocalAddr().String(), reply: reply}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		sec.mu.Lock()
		sec.received = append(sec.received, r)
		n := len(sec.received)
		sec.mu.Unlock()
		if m := sec.reply(n, r); m != nil {
			_ = w.WriteMsg(m)
		}
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return sec
}

func (sec *secondary) notifies() []*dns.Msg {
	sec.mu.Lock()
	defer sec.mu.Unlock()
	return append([]*dns.Msg(nil), sec.received...)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// notifyServer starts a zone server that notifies sec, with fast retries.
func notifyServer(t *testing.T, sec *secondary, tries int, timeout time.Duration) *Server {
	t.Helper()
	s, err := New(Config{Zone: testZone, Nameservers: []string{"ns1.sg.localhost"}, Notify: []string{sec.addr}})
	if err != nil {
		t.Fatal(err)
	}
	s.notifyTries, s.notifyTimeout, s.notifyBackoff = tries, timeout, 5*time.Millisecond
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

func notifySerial(t *testing.T, m *dns.Msg) uint32 {
	t.Helper()
	if m.Opcode != dns.OpcodeNotify || !m.Authoritative || len(m.Question) != 1 ||
		m.Question[0].Name != "sg.localhost." || m.Question[0].Qtype != dns.TypeSOA {
		t.Fatalf("not a NOTIFY for the zone (RFC 1996 3.7): %v", m)
	}
	if len(m.Answer) != 1 {
		t.Fatalf("NOTIFY without the SOA hint: %v", m)
	}
	return m.Answer[0].(*dns.SOA).Serial
}

func TestNotifyAfterChange(t *testing.T) {
	sec := newSecondary(t, ack)
	s := notifyServer(t, sec, 3, 2*time.Second)
	s.Update(7, testRecords())
	eventually(t, "the NOTIFY to be acknowledged", func() bool { return s.metrics.notifySent.Load() == 1 })
	got := sec.notifies()
	if len(got) != 1 || notifySerial(t, got[0]) != 7 {
		t.Fatalf("secondary got %v, want one NOTIFY with serial 7", got)
	}
	s.Update(8, append(testRecords(), TXT("new.sg.localhost", 0, "x")))
	eventually(t, "the second NOTIFY", func() bool { return s.metrics.notifySent.Load() == 2 })
	if got := sec.notifies(); len(got) != 2 || notifySerial(t, got[1]) != 8 {
		t.Fatalf("secondary got %d NOTIFYs, want the second with serial 8", len(got))
	}
	if f := s.metrics.notifyFailed.Load(); f != 0 {
		t.Errorf("%d NOTIFYs counted failed", f)
	}
}

// A NOTIFY is sent only for a change, and a change made before Start is
// announced when the sender starts.
func TestNotifyOnlyOnChange(t *testing.T) {
	sec := newSecondary(t, ack)
	s, err := New(Config{Zone: testZone, Nameservers: []string{"ns1.sg.localhost"}, Notify: []string{sec.addr}})
	if err != nil {
		t.Fatal(err)
	}
	kick := s.notify[0].kick
	s.Update(3, testRecords())
	if len(kick) != 1 {
		t.Fatal("a change left no NOTIFY pending")
	}
	<-kick
	s.Update(4, testRecords()) // a new version with the same records: e.g. a password rotation
	if len(kick) != 0 || s.Serial() != 3 {
		t.Fatalf("unchanged records: NOTIFY pending %v, serial %d; want none and serial 3", len(kick) == 1, s.Serial())
	}
	s.Update(5, append(testRecords(), TXT("new.sg.localhost", 0, "x")))
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	eventually(t, "the NOTIFY of the change made before Start", func() bool { return s.metrics.notifySent.Load() == 1 })
	if got := sec.notifies(); len(got) != 1 || notifySerial(t, got[0]) != 5 {
		t.Fatalf("secondary got %v, want one NOTIFY with serial 5", got)
	}
}

func TestNotifyRetries(t *testing.T) {
	wrongOpcode := func(n int, r *dns.Msg) *dns.Msg {
		m := ack(n, r)
		if n == 1 {
			m.Opcode = dns.OpcodeQuery // a reply that does not acknowledge the NOTIFY
		}
		return m
	}
	wrongID := func(n int, r *dns.Msg) *dns.Msg {
		m := ack(n, r)
		if n == 1 {
			m.Id = r.Id + 1 // e.g. a spoofed or stale reply
		}
		return m
	}
	silentOnce := func(n int, r *dns.Msg) *dns.Msg {
		if n == 1 {
			return nil // lost
		}
		return ack(n, r)
	}
	refused := func(n int, r *dns.Msg) *dns.Msg {
		m := ack(n, r)
		m.Rcode = dns.RcodeRefused
		return m
	}
	silent := func(int, *dns.Msg) *dns.Msg { return nil }
	tests := []struct {
		name       string
		reply      func(int, *dns.Msg) *dns.Msg
		wantSent   uint64
		wantFailed uint64
		wantSeen   int
	}{
		{name: "lost NOTIFY is retried", reply: silentOnce, wantSent: 1, wantSeen: 2},
		{name: "reply with another opcode is not an acknowledgement", reply: wrongOpcode, wantSent: 1, wantSeen: 2},
		{name: "reply with another id is not an acknowledgement", reply: wrongID, wantSent: 1, wantSeen: 2},
		{name: "refused is not retried", reply: refused, wantFailed: 1, wantSeen: 1},
		{name: "gives up after every attempt", reply: silent, wantFailed: 1, wantSeen: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sec := newSecondary(t, tt.reply)
			s := notifyServer(t, sec, 3, 300*time.Millisecond)
			s.Update(9, testRecords())
			eventually(t, "the NOTIFY outcome", func() bool {
				return s.metrics.notifySent.Load()+s.metrics.notifyFailed.Load() == 1
			})
			if sent, failed := s.metrics.notifySent.Load(), s.metrics.notifyFailed.Load(); sent != tt.wantSent || failed != tt.wantFailed {
				t.Errorf("sent %d failed %d, want %d and %d", sent, failed, tt.wantSent, tt.wantFailed)
			}
			got := sec.notifies()
			if len(got) != tt.wantSeen {
				t.Fatalf("secondary saw %d NOTIFYs, want %d", len(got), tt.wantSeen)
			}
			for _, m := range got {
				if notifySerial(t, m) != 9 {
					t.Errorf("NOTIFY serial %d, want 9", notifySerial(t, m))
				}
			}
		})
	}
}

// Changes made while a NOTIFY is under way are announced by one more
// NOTIFY carrying the newest serial, not one per change.
func TestNotifyCoalesces(t *testing.T) {
	release := make(chan struct{})
	sec := newSecondary(t, func(n int, r *dns.Msg) *dns.Msg {
		if n == 1 {
			<-release
		}
		return ack(n, r)
	})
	s := notifyServer(t, sec, 3, 10*time.Second)
	s.Update(100, testRecords())
	eventually(t, "the first NOTIFY", func() bool { return len(sec.notifies()) == 1 })
	for i := range 20 {
		s.Update(uint32(101+i), append(testRecords(), TXT("n.sg.localhost", 0, string(rune('a'+i)))))
	}
	close(release)
	eventually(t, "two acknowledged NOTIFYs", func() bool { return s.metrics.notifySent.Load() == 2 })
	got := sec.notifies()
	if len(got) != 2 {
		t.Fatalf("secondary saw %d NOTIFYs for 21 changes, want 2", len(got))
	}
	if first, last := notifySerial(t, got[0]), notifySerial(t, got[1]); first != 100 || last != 120 {
		t.Errorf("NOTIFY serials %d, %d; want 100, 120", first, last)
	}
}
