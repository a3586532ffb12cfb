package smtpd_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/gate"
	"github.com/sendergate/sendergate/relay"
	"github.com/sendergate/sendergate/smtpd"
)

func TestUpstreamVerdicts(t *testing.T) {
	f, c := testServerAuthenticated(t)
	from := message("From: a@news.example.com")
	tests := []struct {
		name     string
		setup    func()
		wantCode int
		wantEnh  smtp.EnhancedCode
		wantText string
	}{
		{
			name:     "upstream down",
			setup:    f.upstream.Close,
			wantCode: 451, wantEnh: smtp.EnhancedCode{4, 4, 1},
		},
		{
			name:     "upstream back after restart",
			setup:    f.upstream.Restart,
			wantCode: 250, wantEnh: ok250,
		},
		{
			name: "upstream 4xx on DATA passed through",
			setup: func() {
				f.upstream.SetDataReply(&smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "disk full upstream"})
			},
			wantCode: 452, wantEnh: smtp.EnhancedCode{4, 3, 1}, wantText: "disk full upstream",
		},
		{
			name: "upstream 5xx on DATA passed through",
			setup: func() {
				f.upstream.SetDataReply(&smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "looks like spam"})
			},
			wantCode: 554, wantEnh: smtp.EnhancedCode{5, 7, 1}, wantText: "looks like spam",
		},
		{
			name: "upstream refuses a recipient",
			setup: func() {
				f.upstream.SetDataReply(nil)
				f.upstream.SetRcptReply("rcpt@example.net", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
			},
			wantCode: 550, wantEnh: smtp.EnhancedCode{5, 1, 1}, wantText: "no such user",
		},
		{
			name: "upstream closes mid-DATA",
			setup: func() {
				f.upstream.SetRcptReply("rcpt@example.net", nil)
				f.upstream.SetDropInData(true)
			},
			wantCode: 451, wantEnh: smtp.EnhancedCode{4, 4, 1},
		},
		{
			name:     "upstream healthy again",
			setup:    func() { f.upstream.SetDropInData(false) },
			wantCode: 250, wantEnh: ok250,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup()
			before := len(f.upstream.Messages())
			reply := mustSend(t, c, from)
			wantReply(t, reply, tt.wantCode, tt.wantEnh)
			if !strings.Contains(reply.Message, tt.wantText) {
				t.Errorf("reply %q does not contain %q", reply.Message, tt.wantText)
			}
			got := len(f.upstream.Messages()) - before
			if want := map[bool]int{true: 1, false: 0}[tt.wantCode == 250]; got != want {
				t.Errorf("upstream recorded %d messages, want %d", got, want)
			}
		})
	}
}

func TestTransactionLogAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	f, c := testServerAuthenticated(t, withConfig(func(c *smtpd.Config) { c.Registerer = reg }))
	wantReply(t, mustSend(t, c, message("From: a@news.example.com")), 250, ok250)
	wantReply(t, mustSend(t, c, message("From: a@bank.example")), 550, refused)

	logs := f.logs.String()
	var lines []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "msg=transaction") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d transaction log lines, want 2:\n%s", len(lines), logs)
	}
	for i, want := range [][]string{
		{"conn=", "remote=127.0.0.1:", "id=", "account=app@acme", "from_domain=news.example.com", "rcpts=1",
			"decision=ok", "result=accepted", "code=250", "size=", "total=", "sign=", "relay="},
		{"from_domain=bank.example", "decision=unknown_domain", "result=refused", "code=550", `reply="550 5.7.1 domain bank.example`},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("log line %d lacks %q: %s", i, w, lines[i])
			}
		}
	}
	for _, m := range []struct {
		name, label string
		want        float64
	}{
		{"sendergate_smtpd_transactions_total", "result=accepted", 1},
		{"sendergate_smtpd_transactions_total", "result=refused", 1},
		{"sendergate_smtpd_transactions_total", "result=tempfail", 0},
	} {
		if got := metricValue(t, reg, m.name, m.label); got != m.want {
			t.Errorf("%s{%s} = %v, want %v", m.name, m.label, got, m.want)
		}
	}
	if age := metricValue(t, reg, "sendergate_smtpd_snapshot_age_seconds", ""); age < 0 || age > 3600 {
		t.Errorf("snapshot_age_seconds = %v, want a small age", age)
	}
}

func TestShutdownFinishesTransactionInFlight(t *testing.T) {
	f, busy := testServerAuthenticated(t)
	idle := f.authenticated(t)

	if err := busy.Mail("a@client.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := busy.Rcpt("rcpt@example.net", nil); err != nil {
		t.Fatal(err)
	}
	w, err := busy.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("From: a@news.example.com\r\n")); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		done <- f.srv.Shutdown(ctx)
	}()
	// Wait until the listener is closed: new connections are refused.
	for {
		conn, err := net.Dial("tcp", f.addr)
		if err != nil {
			break
		}
		conn.Close()
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a transaction was in flight", err)
	default:
	}

	if _, err := w.Write([]byte("Subject: last one\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.CloseWithResponse(); err != nil {
		t.Fatalf("in-flight message: %v, want 250", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := len(f.upstream.Messages()); n != 1 {
		t.Errorf("upstream got %d messages, want 1", n)
	}
	if err := idle.Noop(); err == nil {
		t.Error("idle connection still open after Shutdown")
	}
}

func TestShutdownDeadlineClosesEverything(t *testing.T) {
	f, busy := testServerAuthenticated(t)
	if err := busy.Mail("a@client.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := busy.Rcpt("rcpt@example.net", nil); err != nil {
		t.Fatal(err)
	}
	w, err := busy.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("From: a@news.example.com\r\n")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with an expired context = %v, want context.Canceled", err)
	}
	if _, err := w.Write([]byte("\r\nbody\r\n")); err == nil {
		if _, err := w.CloseWithResponse(); err == nil {
			t.Fatal("message completed with 250 after a forced shutdown")
		}
	}
	if n := len(f.upstream.Messages()); n != 0 {
		t.Errorf("upstream got %d messages, want 0", n)
	}
}

func TestListenAndServe(t *testing.T) {
	f := testServer(t)
	cfg := smtpd.Config{Listen: "127.0.0.1:0", ListenTLS: "127.0.0.1:0", TLSConfig: f.serverTLS, Gate: gate.New(f.engine, f.store, gate.Options{})}
	srv, err := smtpd.New(cfg, f.engine, relay.NewUpstream(relay.UpstreamConfig{Addr: f.upstream.Addr}))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe() }()
	for srv.Addr() == nil || srv.TLSAddr() == nil {
		time.Sleep(5 * time.Millisecond) // until both listeners are up
	}
	c, err := smtp.Dial(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", appUser, appPass)); err != nil {
		t.Fatalf("AUTH on the STARTTLS listener: %v", err)
	}
	ct, err := smtp.DialTLS(srv.TLSAddr().String(), f.client)
	if err != nil {
		t.Fatalf("implicit TLS listener: %v", err)
	}
	defer ct.Close()
	if err := ct.Auth(sasl.NewPlainClient("", appUser, appPass)); err != nil {
		t.Fatalf("AUTH on the implicit TLS listener: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("ListenAndServe after Shutdown: %v", err)
	}
}
