package bounce

import (
	"context"
	"errors"
	"net"
	"net/smtp"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type mapDomains map[string]string

func (m mapDomains) ReturnPathOwner(_ context.Context, d string) (Owner, bool, error) {
	o, ok := m[d]
	if o == "error" {
		return Owner{}, false, errors.New("database down")
	}
	return Owner{OrgID: o, Domain: "example.com"}, ok, nil
}

type memSink struct {
	mu  sync.Mutex
	got []*Bounce
	err error
}

func (m *memSink) Bounce(_ context.Context, b *Bounce) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.got = append(m.got, b)
	return nil
}

func (m *memSink) list() []*Bounce {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*Bounce(nil), m.got...)
}

var (
	testNow = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	secret  = []byte("test secret of some length......")
)

func startServer(t *testing.T, sink *memSink, maxBytes int64) (string, *Server) {
	t.Helper()
	s, err := New(Options{Domains: mapDomains{"mailing.example.com": "org1", "t1.bounce.sg.localhost": "org2", "down.example.com": "error"},
		Sink: sink, Codec: NewCodec(secret), Now: func() time.Time { return testNow },
		MaxMessageBytes: maxBytes, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return l.Addr().String(), s
}

func addr(t *testing.T, c *Codec, domain string, sent time.Time) string {
	id, err := c.Encode("0123456789abcdef", domain, sent)
	if err != nil {
		t.Fatal(err)
	}
	return "bounce+" + id + "@" + domain
}

// send delivers msg from <> to rcpt and returns the error of RCPT or DATA.
func send(t *testing.T, hostport, rcpt string, msg []byte) error {
	t.Helper()
	c, err := smtp.Dial(hostport)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail(""); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(rcpt); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	return w.Close()
}

func TestServer(t *testing.T) {
	dsn, err := os.ReadFile("testdata/postfix.eml")
	if err != nil {
		t.Fatal(err)
	}
	good := NewCodec(secret)
	tests := []struct {
		name     string
		rcpt     string
		sinkErr  error
		maxBytes int64
		wantCode string // "" = accepted
		wantSink bool
	}{
		{name: "good", rcpt: addr(t, good, "mailing.example.com", testNow.Add(-time.Hour)), wantSink: true},
		{name: "bad mac", rcpt: addr(t, NewCodec([]byte("forger")), "mailing.example.com", testNow)},
		{name: "other domain", rcpt: strings.Replace(addr(t, good, "mailing.example.com", testNow), "mailing.example.com", "t1.bounce.sg.localhost", 1)},
		{name: "expired", rcpt: addr(t, good, "mailing.example.com", testNow.Add(-800*time.Hour))},
		{name: "unknown domain", rcpt: addr(t, good, "other.example.com", testNow), wantCode: "550 5.1.1"},
		{name: "not a bounce address", rcpt: "postmaster@mailing.example.com", wantCode: "550 5.1.1"},
		{name: "lookup error", rcpt: addr(t, good, "down.example.com", testNow), wantCode: "451 4.3.0"},
		{name: "oversize", rcpt: addr(t, good, "mailing.example.com", testNow), maxBytes: 500, wantCode: "552 5.3.4"},
		{name: "sink error", rcpt: addr(t, good, "mailing.example.com", testNow), sinkErr: errors.New("db down"), wantCode: "451 4.3.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &memSink{err: tt.sinkErr}
			hp, _ := startServer(t, sink, tt.maxBytes)
			err := send(t, hp, tt.rcpt, dsn)
			if tt.wantCode == "" && err != nil || tt.wantCode != "" && (err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), `"`, ""), tt.wantCode)) {
				t.Fatalf("err = %v, want %q", err, tt.wantCode)
			}
			got := sink.list()
			if !tt.wantSink {
				if len(got) != 0 {
					t.Fatalf("sink got %+v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("sink got %d", len(got))
			}
			b := got[0]
			if b.OrgID != "org1" || b.SendingDomain != "example.com" || b.MessageID != "0123456789abcdef" || b.Report.Kind != Hard ||
				b.Report.Recipients[0].Address != "nobody@example.net" || b.Report.Recipients[0].Status != "5.1.1" {
				t.Fatalf("bounce %+v %+v", b, b.Report)
			}
		})
	}
}

func TestServerForgedBounces(t *testing.T) {
	dsn, err := os.ReadFile("testdata/postfix.eml")
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	hp, s := startServer(t, sink, 0)
	for i := 0; i < 100; i++ {
		forger := NewCodec([]byte{byte(i), 1, 2, 3})
		if err := send(t, hp, addr(t, forger, "mailing.example.com", testNow), dsn); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(sink.list()); n != 0 {
		t.Fatalf("%d forged bounces reached the sink", n)
	}
	if n := testutil.ToFloat64(s.dropped.WithLabelValues("bad_mac")); n != 100 {
		t.Fatalf("dropped bad_mac = %v", n)
	}
}

func TestServerConnectionLimit(t *testing.T) {
	s, err := New(Options{Domains: mapDomains{}, Sink: &memSink{}, Codec: NewCodec(secret), MaxConnectionsPerIP: 1})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer s.Close()
	first, err := smtp.Dial(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_, err = smtp.Dial(l.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "421") {
		t.Fatalf("second connection: %v, want 421", err)
	}
}

// TestServerRecipientBinding: a bounce id made for a message's one
// recipient acts only on that recipient; a report about anyone else
// through it (a recipient forging bounces for others) reaches nobody.
func TestServerRecipientBinding(t *testing.T) {
	dsn, err := os.ReadFile("testdata/postfix.eml") // reports nobody@example.net
	if err != nil {
		t.Fatal(err)
	}
	c := NewCodec(secret)
	bound := func(rcpt string) string {
		id, err := c.EncodeFor("0123456789abcdef", "mailing.example.com", rcpt, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if l := len("bounce+" + id); l > 64 {
			t.Fatalf("local part of %d octets, over RFC 5321's 64", l)
		}
		return "bounce+" + id + "@mailing.example.com"
	}
	for _, tt := range []struct {
		name, rcpt string
		reached    bool
	}{
		{"its recipient", "nobody@example.net", true},
		{"its recipient, other case", "<NoBody@Example.NET>", true},
		{"another recipient", "victim@example.net", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sink := &memSink{}
			hp, s := startServer(t, sink, 0)
			if err := send(t, hp, bound(tt.rcpt), dsn); err != nil {
				t.Fatal(err)
			}
			got := sink.list()
			if tt.reached != (len(got) == 1) {
				t.Fatalf("sink got %d bounces, want reached=%v", len(got), tt.reached)
			}
			if !tt.reached && testutil.ToFloat64(s.dropped.WithLabelValues("recipient_mismatch")) != 1 {
				t.Error("the mismatch was not counted")
			}
		})
	}
}

// TestServerRedactedComplaint: a complaint through a one-recipient id
// whose feedback loop redacted the recipient reaches the sink with the
// message id and no recipient (an event, no suppression), where a DSN
// naming someone else is dropped.
func TestServerRedactedComplaint(t *testing.T) {
	arf, err := os.ReadFile("testdata/arf-redacted.eml")
	if err != nil {
		t.Fatal(err)
	}
	id, err := NewCodec(secret).EncodeFor("0123456789abcdef", "mailing.example.com", "user@example.com", testNow)
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	hp, _ := startServer(t, sink, 0)
	if err := send(t, hp, "bounce+"+id+"@mailing.example.com", arf); err != nil {
		t.Fatal(err)
	}
	got := sink.list()
	if len(got) != 1 || got[0].Report.Kind != Complaint || len(got[0].Report.Recipients) != 0 || got[0].MessageID != "0123456789abcdef" {
		t.Fatalf("sink got %+v", got)
	}
}
