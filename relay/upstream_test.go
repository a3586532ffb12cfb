package relay_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/relay"
	"github.com/sendergate/sendergate/relay/relaytest"
)

// testMessage returns a message in three buffers, as smtpd hands it over:
// signature header, other headers, body. The body has lines that need
// dot-stuffing on the wire and 8-bit text.
func testMessage(id string, to ...string) *relay.Message {
	return &relay.Message{
		ID:   id,
		From: "bounce+" + id + "@rp.example.com",
		To:   to,
		Data: net.Buffers{
			[]byte("DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sg1;\r\n\tb=abc\r\n"),
			[]byte("From: a@example.com\r\nTo: b@example.net\r\nSubject: " + id + "\r\n\r\n"),
			[]byte("Hello.\r\n.\r\n..leading dots\r\n.end\r\nnaïve 8-bit\r\n"),
		},
	}
}

func flat(b net.Buffers) []byte { return bytes.Join(b, nil) }

func newUpstream(t *testing.T, cfg relay.UpstreamConfig) *relay.Upstream {
	t.Helper()
	u := relay.NewUpstream(cfg)
	t.Cleanup(func() { u.Close() })
	return u
}

// smtpErr asserts that err is a bare *smtp.SMTPError, as go-smtp needs.
func smtpErr(t *testing.T, err error) *smtp.SMTPError {
	t.Helper()
	if err == nil {
		t.Fatal("Send = nil, want an SMTP error")
	}
	e, ok := err.(*smtp.SMTPError)
	if !ok {
		t.Fatalf("Send error %T %v is not a bare *smtp.SMTPError", err, err)
	}
	return e
}

func assertUnreachable(t *testing.T, err error) {
	t.Helper()
	e := smtpErr(t, err)
	if e.Code != 451 || e.EnhancedCode != (smtp.EnhancedCode{4, 4, 1}) {
		t.Fatalf("Send error = %d %v %q, want 451 4.4.1", e.Code, e.EnhancedCode, e.Message)
	}
}

func TestUpstreamDeliversByteExact(t *testing.T) {
	srv := relaytest.NewServer(t)
	u := newUpstream(t, relay.UpstreamConfig{Addr: srv.Addr, LocalName: "gate.example.com"})
	m := testMessage("m1", "b@example.net", "c@example.org")
	if err := u.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.Messages()
	if len(got) != 1 {
		t.Fatalf("server got %d messages, want 1", len(got))
	}
	if got[0].From != m.From || fmt.Sprint(got[0].To) != fmt.Sprint(m.To) {
		t.Errorf("envelope = %q %q, want %q %q", got[0].From, got[0].To, m.From, m.To)
	}
	if want := flat(m.Data); !bytes.Equal(got[0].Data, want) {
		t.Errorf("data differs:\n got %q\nwant %q", got[0].Data, want)
	}
}

func TestUpstreamReusesConnections(t *testing.T) {
	srv := relaytest.NewServer(t)
	u := newUpstream(t, relay.UpstreamConfig{Addr: srv.Addr})
	for i := range 5 {
		if err := u.Send(context.Background(), testMessage(fmt.Sprint("seq", i), "b@example.net")); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if n := srv.Connections(); n != 1 {
		t.Fatalf("5 sequential messages used %d connections, want 1", n)
	}

	const workers, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				errs <- u.Send(context.Background(), testMessage(fmt.Sprintf("par%d-%d", w, i), "b@example.net"))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Send: %v", err)
		}
	}
	if got := len(srv.Messages()); got != 5+workers*each {
		t.Errorf("server got %d messages, want %d", got, 5+workers*each)
	}
	// Each worker holds at most one connection at a time and none is
	// closed, so no more than one connection per worker is ever dialed.
	if n := srv.Connections(); n > workers {
		t.Errorf("%d workers used %d connections, want at most %d", workers, n, workers)
	}
}

func TestUpstreamDoesNotPool(t *testing.T) {
	tests := []struct {
		name  string
		cfg   func(addr string) relay.UpstreamConfig
		close bool
	}{
		{name: "idle timeout expired", cfg: func(addr string) relay.UpstreamConfig {
			return relay.UpstreamConfig{Addr: addr, IdleTimeout: time.Nanosecond}
		}},
		{name: "after Close", close: true, cfg: func(addr string) relay.UpstreamConfig {
			return relay.UpstreamConfig{Addr: addr}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := relaytest.NewServer(t)
			u := newUpstream(t, tt.cfg(srv.Addr))
			if tt.close {
				u.Close()
			}
			for i := range 3 {
				if err := u.Send(context.Background(), testMessage(fmt.Sprint("np", i), "b@example.net")); err != nil {
					t.Fatalf("Send %d: %v", i, err)
				}
			}
			if n := srv.Connections(); n != 3 {
				t.Errorf("connections = %d, want 3 (one per message)", n)
			}
			if n := len(srv.Messages()); n != 3 {
				t.Errorf("server got %d messages, want 3", n)
			}
		})
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	closedAddr := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) relay.UpstreamConfig
	}{
		{"connection refused", func(t *testing.T) relay.UpstreamConfig {
			return relay.UpstreamConfig{Addr: closedAddr(t)}
		}},
		{"starttls not offered", func(t *testing.T) relay.UpstreamConfig {
			return relay.UpstreamConfig{Addr: relaytest.NewServer(t).Addr, TLS: "starttls"}
		}},
		{"implicit tls to plaintext server", func(t *testing.T) relay.UpstreamConfig {
			return relay.UpstreamConfig{Addr: relaytest.NewServer(t).Addr, TLS: "tls"}
		}},
		{"untrusted certificate", func(t *testing.T) relay.UpstreamConfig {
			srv := relaytest.NewServer(t, relaytest.WithStartTLS())
			return relay.UpstreamConfig{Addr: srv.Addr, TLS: "starttls"}
		}},
		{"wrong password", func(t *testing.T) relay.UpstreamConfig {
			srv := relaytest.NewServer(t, relaytest.WithAuth("user", "secret"))
			return relay.UpstreamConfig{Addr: srv.Addr, Username: "user", Password: "wrong"}
		}},
		{"auth not offered", func(t *testing.T) relay.UpstreamConfig {
			srv := relaytest.NewServer(t)
			return relay.UpstreamConfig{Addr: srv.Addr, Username: "user", Password: "secret"}
		}},
		{"unknown tls mode", func(t *testing.T) relay.UpstreamConfig {
			return relay.UpstreamConfig{Addr: relaytest.NewServer(t).Addr, TLS: "maybe"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, tt.setup(t))
			assertUnreachable(t, u.Send(context.Background(), testMessage("down", "b@example.net")))
		})
	}
}

func TestUpstreamCancelledContext(t *testing.T) {
	srv := relaytest.NewServer(t)
	u := newUpstream(t, relay.UpstreamConfig{Addr: srv.Addr})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assertUnreachable(t, u.Send(ctx, testMessage("cancelled", "b@example.net")))
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("server got %d messages after a cancelled Send, want 0", n)
	}
}

func TestUpstreamPassesRefusalsThrough(t *testing.T) {
	reply := func(code int, ec smtp.EnhancedCode, msg string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
	}
	tests := []struct {
		name  string
		setup func(*relaytest.Server)
		want  *smtp.SMTPError
		// conns is how many connections the two messages take: a refused
		// RCPT with another one accepted leaves the pipelined transaction
		// in DATA (354), which only dropping the connection can abort.
		conns int
	}{
		{"MAIL 4xx", func(s *relaytest.Server) {
			s.SetMailReply(reply(450, smtp.EnhancedCode{4, 7, 1}, "greylisted"))
		}, reply(450, smtp.EnhancedCode{4, 7, 1}, "greylisted"), 0},
		{"MAIL 5xx", func(s *relaytest.Server) {
			s.SetMailReply(reply(550, smtp.EnhancedCode{5, 7, 1}, "sender blocked"))
		}, reply(550, smtp.EnhancedCode{5, 7, 1}, "sender blocked"), 0},
		{"second RCPT 5xx refuses the whole message", func(s *relaytest.Server) {
			s.SetRcptReply("c@example.org", reply(550, smtp.EnhancedCode{5, 1, 1}, "no such user"))
		}, reply(550, smtp.EnhancedCode{5, 1, 1}, "no such user"), 2},
		{"RCPT 4xx", func(s *relaytest.Server) {
			s.SetRcptReply("b@example.net", reply(452, smtp.EnhancedCode{4, 2, 2}, "mailbox full"))
		}, reply(452, smtp.EnhancedCode{4, 2, 2}, "mailbox full"), 2},
		{"final dot 5xx", func(s *relaytest.Server) {
			s.SetDataReply(reply(554, smtp.EnhancedCode{5, 6, 0}, "content rejected"))
		}, reply(554, smtp.EnhancedCode{5, 6, 0}, "content rejected"), 0},
		{"final dot 4xx", func(s *relaytest.Server) {
			s.SetDataReply(reply(451, smtp.EnhancedCode{4, 3, 0}, "queue file write error"))
		}, reply(451, smtp.EnhancedCode{4, 3, 0}, "queue file write error"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := relaytest.NewServer(t)
			u := newUpstream(t, relay.UpstreamConfig{Addr: srv.Addr})
			tt.setup(srv)
			got := smtpErr(t, u.Send(context.Background(), testMessage("refused", "b@example.net", "c@example.org")))
			if got.Code != tt.want.Code || got.EnhancedCode != tt.want.EnhancedCode || got.Message != tt.want.Message {
				t.Errorf("Send error = %d %v %q, want %d %v %q",
					got.Code, got.EnhancedCode, got.Message, tt.want.Code, tt.want.EnhancedCode, tt.want.Message)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Fatalf("server recorded %d messages, want 0", n)
			}

			// The connection stays usable (RSET after an open transaction).
			srv.SetMailReply(nil)
			srv.SetRcptReply("b@example.net", nil)
			srv.SetRcptReply("c@example.org", nil)
			srv.SetDataReply(nil)
			ok := testMessage("after", "b@example.net", "c@example.org")
			if err := u.Send(context.Background(), ok); err != nil {
				t.Fatalf("Send after refusal: %v", err)
			}
			msgs := srv.Messages()
			if len(msgs) != 1 || len(msgs[0].To) != 2 {
				t.Fatalf("after refusal the server got %+v, want one message to 2 recipients", msgs)
			}
			want := max(tt.conns, 1)
			if n := srv.Connections(); n != want {
				t.Errorf("connections = %d, want %d", n, want)
			}
		})
	}
}

func TestUpstreamDropInDataIsNeverRetried(t *testing.T) {
	srv := relaytest.NewServer(t)
	u := newUpstream(t, relay.UpstreamConfig{Addr: srv.Addr})
	if err := u.Send(context.Background(), testMessage("first", "b@example.net")); err != nil {
		t.Fatalf("first Send: %v", err)
	}
	srv.SetDropInData(true)
	// The pooled connection is reused and dies after the content started:
	// 451, and no second attempt that could duplicate the message.
	assertUnreachable(t, u.Send(context.Background(), testMessage("dropped", "b@example.net")))
	if n := srv.Connections(); n != 1 {
		t.Errorf("connections = %d, want 1 (no retry after content was sent)", n)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("server recorded %d messages, want only the first", n)
	}
}

func TestUpstreamRetriesStaleConnection(t *testing.T) {
	srv := relaytest.NewServer(t)
	u := newUpstream(t, relay.UpstreamConfig{Addr: srv.Addr})
	if err := u.Send(context.Background(), testMessage("before", "b@example.net")); err != nil {
		t.Fatalf("Send before restart: %v", err)
	}
	srv.Restart() // the pooled connection is now dead
	if err := u.Send(context.Background(), testMessage("after", "b@example.net")); err != nil {
		t.Fatalf("Send after restart: %v", err)
	}
	msgs := srv.Messages()
	if len(msgs) != 2 || !bytes.Contains(msgs[1].Data, []byte("Subject: after")) {
		t.Fatalf("server got %d messages, want both, the second once", len(msgs))
	}
	if n := srv.Connections(); n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
}

func TestUpstreamTLSAndAuth(t *testing.T) {
	tests := []struct {
		name string
		opt  relaytest.Option
		mode string
	}{
		{name: "starttls", opt: relaytest.WithStartTLS(), mode: "starttls"},
		{name: "implicit tls", opt: relaytest.WithImplicitTLS(), mode: "tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := relaytest.NewServer(t, tt.opt, relaytest.WithAuth("relay-user", "s3cret"))
			u := newUpstream(t, relay.UpstreamConfig{
				Addr: srv.Addr, TLS: tt.mode,
				TLSConfig: &tls.Config{RootCAs: srv.RootCAs()},
				Username:  "relay-user", Password: "s3cret",
			})
			for i := range 2 {
				m := testMessage(fmt.Sprint("tls", i), "b@example.net")
				if err := u.Send(context.Background(), m); err != nil {
					t.Fatalf("Send %d: %v", i, err)
				}
			}
			msgs := srv.Messages()
			if len(msgs) != 2 || msgs[1].User != "relay-user" {
				t.Fatalf("server got %+v, want 2 messages authenticated as relay-user", msgs)
			}
			if n := srv.Connections(); n != 1 {
				t.Errorf("connections = %d, want 1", n)
			}
		})
	}
}

func TestUpstreamRefusesBadEnvelope(t *testing.T) {
	srv := relaytest.NewServer(t)
	u := newUpstream(t, relay.UpstreamConfig{Addr: srv.Addr})
	tests := []struct {
		name string
		m    *relay.Message
	}{
		{"no recipients", testMessage("none")},
		{"CRLF in recipient", testMessage("crlf", "b@example.net\r\nRCPT TO:<x@evil>")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e := smtpErr(t, u.Send(context.Background(), tt.m)); e.Code != 554 {
				t.Errorf("Send error code = %d, want 554", e.Code)
			}
		})
	}
	if n := srv.Connections(); n != 0 {
		t.Errorf("connections = %d, want 0", n)
	}
}

// BenchmarkUpstreamSend relays a 10 KiB message over one pooled
// connection to the in-process go-smtp server, whose work then counts in
// ns/op, B/op and allocs/op. With RELAY_BENCH_UPSTREAM=host:port (for
// example bench/sink in another process) only the relay's own costs are
// counted. RELAY_BENCH_NOPIPELINING=1 makes the in-process server not
// offer PIPELINING.
func BenchmarkUpstreamSend(b *testing.B) {
	for _, rcpts := range []int{1, 3} {
		b.Run(fmt.Sprintf("rcpt=%d", rcpts), func(b *testing.B) { benchmarkSend(b, rcpts) })
	}
}

func benchmarkSend(b *testing.B, rcpts int) {
	addr := os.Getenv("RELAY_BENCH_UPSTREAM")
	var srv *relaytest.Server
	if addr == "" {
		var opts []relaytest.Option
		if os.Getenv("RELAY_BENCH_NOPIPELINING") != "" {
			opts = append(opts, relaytest.WithoutPipelining())
		}
		srv = relaytest.NewServer(b, opts...)
		addr = srv.Addr
	}
	u := relay.NewUpstream(relay.UpstreamConfig{Addr: addr})
	defer u.Close()
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"), 160) // 10 KiB
	m := &relay.Message{
		ID: "bench", From: "bounce@rp.example.com",
		Data: net.Buffers{[]byte("From: a@example.com\r\nSubject: bench\r\n\r\n"), body},
	}
	for i := range rcpts {
		m.To = append(m.To, fmt.Sprintf("r%d@example.net", i))
	}
	b.SetBytes(m.Size())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if srv != nil && i%1000 == 0 {
			srv.ClearMessages()
		}
		if err := u.Send(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
}

func TestUpstreamPipelining(t *testing.T) {
	tests := []struct {
		name      string
		opts      []relaytest.Option
		pipelined bool
	}{
		{name: "upstream offers PIPELINING", pipelined: true},
		{name: "upstream without PIPELINING", opts: []relaytest.Option{relaytest.WithoutPipelining()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := relaytest.NewServer(t, tt.opts...)
			u := newUpstream(t, relay.UpstreamConfig{Addr: srv.Addr})
			m := testMessage("ok1", "b@example.net", "c@example.org")
			if err := u.Send(context.Background(), m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			reads := srv.MailReads()
			if len(reads) != 1 {
				t.Fatalf("server saw MAIL in %d reads, want 1", len(reads))
			}
			batched := strings.Contains(reads[0], "RCPT TO:<c@example.org>\r\nDATA\r\n")
			if batched != tt.pipelined {
				t.Errorf("read with MAIL = %q; pipelined = %v, want %v", reads[0], batched, tt.pipelined)
			}
			if strings.Contains(reads[0], "DATA") && !strings.HasPrefix(reads[0], "MAIL FROM:<bounce+ok1@rp.example.com> BODY=8BITMIME SIZE=") {
				t.Errorf("MAIL command = %q, want go-smtp's parameters", reads[0])
			}

			// One recipient refused: the whole message is refused with the
			// upstream's reply, nothing is delivered.
			srv.SetRcptReply("c@example.org", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
			e := smtpErr(t, u.Send(context.Background(), testMessage("refused", "b@example.net", "c@example.org")))
			if e.Code != 550 || e.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) || e.Message != "no such user" {
				t.Errorf("Send error = %d %v %q, want 550 5.1.1 no such user", e.Code, e.EnhancedCode, e.Message)
			}
			srv.SetRcptReply("c@example.org", nil)
			if err := u.Send(context.Background(), testMessage("ok2", "b@example.net", "c@example.org")); err != nil {
				t.Fatalf("Send after the refusal: %v", err)
			}
			msgs := srv.Messages()
			if len(msgs) != 2 {
				t.Fatalf("server got %d messages, want 2 (the refused one not at all)", len(msgs))
			}
			for i, id := range []string{"ok1", "ok2"} {
				want := flat(testMessage(id, "b@example.net", "c@example.org").Data)
				if !bytes.Equal(msgs[i].Data, want) || len(msgs[i].To) != 2 {
					t.Errorf("message %d = %q to %q, want %q to 2 recipients", i, msgs[i].Data, msgs[i].To, want)
				}
			}
			// Without pipelining the refused RCPT is answered before DATA,
			// so RSET keeps the connection; with it, DATA got 354 and the
			// connection had to be dropped.
			wantConns := 1
			if tt.pipelined {
				wantConns = 2
			}
			if n := srv.Connections(); n != wantConns {
				t.Errorf("connections = %d, want %d", n, wantConns)
			}
		})
	}
}

func TestUpstream421IsUnreachable(t *testing.T) {
	tests := []struct {
		name string
		opts []relaytest.Option
	}{
		{name: "pipelined"},
		{name: "lockstep", opts: []relaytest.Option{relaytest.WithoutPipelining()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := relaytest.NewServer(t, tt.opts...)
			u := newUpstream(t, relay.UpstreamConfig{Addr: srv.Addr})
			srv.SetMailReply(&smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "shutting down"})
			assertUnreachable(t, u.Send(context.Background(), testMessage("closing", "b@example.net", "c@example.org")))
			srv.SetMailReply(nil)
			if err := u.Send(context.Background(), testMessage("after", "b@example.net")); err != nil {
				t.Fatalf("Send after 421: %v", err)
			}
			if n := len(srv.Messages()); n != 1 {
				t.Errorf("server got %d messages, want 1", n)
			}
			// The 421 session is never reused: a second connection.
			if n := srv.Connections(); n != 2 {
				t.Errorf("connections = %d, want 2", n)
			}
		})
	}
}
