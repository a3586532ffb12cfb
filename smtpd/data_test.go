package smtpd_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/smtpd"
)

var tooLarge = smtp.EnhancedCode{5, 3, 4}

func TestMessageSizeBoundary(t *testing.T) {
	const limit = 64 << 10
	f := testServer(t, withConfig(func(c *smtpd.Config) { c.MaxMessageBytes = limit }))
	c := f.authenticated(t)
	// A body line starting with "." travels as ".." (RFC 5321 4.5.2) and
	// counts once.
	dotted := strings.Replace(sizedMessage(t, limit), "\r\n\r\nxxx", "\r\n\r\n.xx", 1)
	tests := []struct {
		name     string
		message  string
		wantCode int
		wantEnh  smtp.EnhancedCode
	}{
		{name: "exactly the limit", message: sizedMessage(t, limit), wantCode: 250, wantEnh: ok250},
		{name: "exactly the limit after dot-unstuffing", message: dotted, wantCode: 250, wantEnh: ok250},
		{name: "one octet over", message: sizedMessage(t, limit+1), wantCode: 552, wantEnh: tooLarge},
		{name: "far over", message: sizedMessage(t, 5*limit), wantCode: 552, wantEnh: tooLarge},
		{name: "the session goes on", message: sizedMessage(t, 100), wantCode: 250, wantEnh: ok250},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := mustSend(t, c, tt.message)
			wantReply(t, reply, tt.wantCode, tt.wantEnh)
			if tt.wantCode == 552 && !strings.Contains(reply.Message, fmt.Sprint(limit)) {
				t.Errorf("reply %q does not name the limit", reply.Message)
			}
		})
	}
	t.Run("MAIL SIZE", func(t *testing.T) {
		if err := c.Mail("app@client.test", &smtp.MailOptions{Size: limit}); err != nil {
			t.Fatalf("MAIL SIZE=%d: %v", limit, err)
		}
		if err := c.Reset(); err != nil {
			t.Fatal(err)
		}
		wantSMTPCode(t, c.Mail("app@client.test", &smtp.MailOptions{Size: limit + 1}), 552, tooLarge)
	})
}

func TestLongLinesAndBareCR(t *testing.T) {
	// The session reads such messages whole and hands them to the message
	// stage, which judges them (go-smtp's own line limit answered 451 and
	// closed the connection). The From domain is one the stage refuses in
	// any case, so the verdict is the stage's (550) and the message never
	// reaches the upstream, whose own line limit is not under test.
	_, c := testServerAuthenticated(t)
	head := "From: a@pending.example\r\nTo: rcpt@example.net\r\nSubject: long\r\n\r\n"
	tests := []struct{ name, body string }{
		{name: "body line of 5000 octets", body: strings.Repeat("x", 5000) + "\r\n"},
		{name: "body line over the command budget", body: strings.Repeat("y", 100<<10) + "\r\n"},
		{name: "bare CR", body: "one\rtwo\r\n"},
		{name: "long line without a final CRLF", body: strings.Repeat("z", 3000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := mustSend(t, c, head+tt.body)
			if reply.Code != 550 {
				t.Errorf("reply %d %v %q, want the message stage's 550", reply.Code, reply.EnhancedCode, reply.Message)
			}
			wantReply(t, mustSend(t, c, message("From: a@news.example.com")), 250, ok250)
		})
	}
}

func TestDataTrickle(t *testing.T) {
	// Every pause is shorter than ReadTimeout, the whole transfer longer:
	// the deadline slides with each read.
	const readTimeout = time.Second
	f := testServer(t, withConfig(func(c *smtpd.Config) { c.ReadTimeout = readTimeout }))
	c := login(t, f.addr)
	c.startData("")
	msg := sizedMessage(t, 12<<10)
	const parts = 12
	step := len(msg) / parts
	for i := range parts {
		end := (i + 1) * step
		if i == parts-1 {
			end = len(msg)
		}
		if err := c.write([]byte(msg[i*step : end])); err != nil {
			t.Fatalf("write part %d: %v", i, err)
		}
		time.Sleep(readTimeout / 6)
	}
	c.send(".")
	c.want(250, "2.0.0")
}

func TestDataTimeLimit(t *testing.T) {
	// A client that never stalls long enough for ReadTimeout still cannot
	// hold a transaction open past MaxDataTime.
	f := testServer(t, withConfig(func(c *smtpd.Config) {
		c.ReadTimeout = 300 * time.Millisecond
		c.MaxDataTime = 600 * time.Millisecond
	}))
	c := login(t, f.addr)
	c.startData("")
	if err := c.write([]byte("From: a@news.example.com\r\nSubject: slow\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	reply := c.replyAsync()
	var got string
	for i := 0; i < 100 && got == ""; i++ { // at most 5 s
		select {
		case got = <-reply:
		case <-time.After(50 * time.Millisecond):
			if err := c.write([]byte("a line\r\n")); err != nil {
				got = <-reply // closed: the reply was sent before
			}
		}
	}
	if !strings.HasPrefix(got, "421 4.4.2") {
		t.Fatalf("reply %q, want 421 4.4.2 after the DATA time limit", got)
	}
	if code, _ := c.reply(); code != 0 {
		t.Errorf("connection still open after 421 (reply %d)", code)
	}
	if n := len(f.upstream.Messages()); n != 0 {
		t.Errorf("upstream got %d messages, want 0", n)
	}
}

func TestDeclaredSizeAllocatesNothing(t *testing.T) {
	// 40 connections declare 16 MB and send 20 octets: the server holds
	// what arrived (a first buffer each), not what was declared.
	const conns, declared = 40, 16_000_000
	reg := prometheus.NewRegistry()
	f := testServer(t, withConfig(func(c *smtpd.Config) {
		c.MaxMessageBytes = 16 << 20
		c.Registerer = reg
	}))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for range conns {
		c := login(t, f.addr)
		c.startData(fmt.Sprintf(" SIZE=%d", declared))
		if err := c.write([]byte("From: a@news.exampl")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every transaction to hold its first buffer", func() bool { return f.srv.BufferedBytes() >= conns*4096 })
	held := f.srv.BufferedBytes()
	if held > conns*64<<10 {
		t.Errorf("buffered %d bytes for %d connections of 20 octets, want at most 64 KiB each", held, conns)
	}
	if got := metricValue(t, reg, "sendergate_smtpd_buffered_bytes", ""); got != float64(held) {
		t.Errorf("sendergate_smtpd_buffered_bytes = %v, want %d", got, held)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<20 {
		t.Errorf("heap grew by %d MiB for %d connections declaring %d bytes each", grew>>20, conns, declared)
	}
}

func TestBufferedBytesCap(t *testing.T) {
	const budget = 1 << 20
	f := testServer(t, withConfig(func(c *smtpd.Config) {
		c.MaxMessageBytes = 900 << 10 // with its 64 KiB margin, within the budget
		c.MaxBufferedBytes = budget
	}))
	// a holds 600 KiB in an unfinished transaction.
	a := login(t, f.addr)
	a.startData("")
	big := sizedMessage(t, 600<<10)
	if err := a.write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first transaction to buffer its data", func() bool { return f.srv.BufferedBytes() >= 600<<10 })

	b := f.authenticated(t)
	reply := mustSend(t, b, big)
	wantReply(t, reply, 451, smtp.EnhancedCode{4, 3, 1})
	if !strings.Contains(reply.Message, "storage") {
		t.Errorf("reply %q does not say why", reply.Message)
	}
	// Small messages still pass while a holds its share.
	wantReply(t, mustSend(t, b, message("From: a@news.example.com")), 250, ok250)

	a.send(".")
	a.want(250, "2.0.0")
	wantReply(t, mustSend(t, b, big), 250, ok250)
	if n := f.srv.BufferedBytes(); n != 0 {
		t.Errorf("%d bytes still accounted after every transaction ended", n)
	}
}

func TestBDAT(t *testing.T) {
	// go-smtp reads BDAT chunks as commands: chunks larger than the
	// command budget must still pass.
	f := testServer(t)
	c := login(t, f.addr)
	msg := sizedMessage(t, 200<<10)
	c.send("MAIL FROM:<app@client.test>")
	c.want(250, "")
	c.send("RCPT TO:<rcpt@example.net>")
	c.want(250, "")
	half := len(msg) / 2
	c.send(fmt.Sprintf("BDAT %d", half))
	if err := c.write([]byte(msg[:half])); err != nil {
		t.Fatal(err)
	}
	c.want(250, "")
	c.send(fmt.Sprintf("BDAT %d LAST", len(msg)-half))
	if err := c.write([]byte(msg[half:])); err != nil {
		t.Fatal(err)
	}
	c.want(250, "2.0.0 OK: accepted")
	if code, msg := c.transaction(message("From: a@news.example.com")); code != 250 {
		t.Fatalf("DATA after BDAT: %d %s", code, msg)
	}
}

// waitFor polls cond (the server works on its own goroutines) for up to
// ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
