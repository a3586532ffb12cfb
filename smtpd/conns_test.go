package smtpd_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/smtpd"
)

func TestConnectionLimits(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := testServer(t, withConfig(func(c *smtpd.Config) {
		c.MaxConnections = 5
		c.MaxConnectionsPerIP = 3
		c.Registerer = reg
	}))
	greet := func(from string) (*rawConn, int, string) {
		c := newRaw(t, dialFrom(t, from, f.addr))
		code, msg := c.reply()
		return c, code, msg
	}
	var first *rawConn
	for i := range 3 {
		c, code, msg := greet("127.0.0.1")
		if code != 220 {
			t.Fatalf("connection %d from 127.0.0.1: %d %s, want 220", i+1, code, msg)
		}
		if i == 0 {
			first = c
		}
	}
	c, code, msg := greet("127.0.0.1")
	if code != 421 || !strings.HasPrefix(msg, "4.7.0") || !strings.Contains(msg, "your address") {
		t.Fatalf("fourth connection from 127.0.0.1: %d %q, want 421 4.7.0 about the address", code, msg)
	}
	if code, _ := c.reply(); code != 0 {
		t.Error("connection not closed after the 421 greeting")
	}
	for i := range 2 {
		if _, code, msg := greet("127.0.0.2"); code != 220 {
			t.Fatalf("connection %d from 127.0.0.2: %d %s, want 220 (another address)", i+1, code, msg)
		}
	}
	if _, code, msg := greet("127.0.0.3"); code != 421 || !strings.HasPrefix(msg, "4.7.0") {
		t.Fatalf("sixth connection: %d %q, want 421 4.7.0 (max_connections)", code, msg)
	}
	t.Run("implicit TLS is refused inside TLS", func(t *testing.T) {
		c, err := smtp.DialTLS(f.tlsAddr, f.client)
		if err == nil { // go-smtp's client reads the greeting with the first command
			defer c.Close()
			err = c.Hello("client.test")
		}
		wantSMTPCode(t, err, 421, smtp.EnhancedCode{4, 7, 0})
	})
	// A closed connection frees its place (the server sees the close on
	// its own goroutine).
	first.send("QUIT")
	first.want(221, "")
	waitFor(t, "a freed place", func() bool {
		c := newRaw(t, dialFrom(t, "127.0.0.1", f.addr))
		code, _ := c.reply()
		c.conn.Close()
		return code == 220
	})
	if got := metricValue(t, reg, "sendergate_smtpd_connections_refused_total", "reason=max_connections_per_ip"); got < 1 {
		t.Errorf("refused{max_connections_per_ip} = %v, want at least 1", got)
	}
	if got := metricValue(t, reg, "sendergate_smtpd_connections_refused_total", "reason=max_connections"); got < 2 {
		t.Errorf("refused{max_connections} = %v, want at least 2", got)
	}
}

func TestPreAuthIdleLimit(t *testing.T) {
	const preAuth = 300 * time.Millisecond
	f := testServer(t, withConfig(func(c *smtpd.Config) {
		c.PreAuthTimeout = preAuth
		c.ReadTimeout = time.Minute
	}))
	t.Run("NOOPs do not keep a connection open", func(t *testing.T) {
		c := dialRaw(t, f.addr)
		c.ehlo()
		code, msg := noopUntilClosed(c, 100)
		if code != 421 || !strings.HasPrefix(msg, "4.4.2") {
			t.Fatalf("after NOOPs: %d %q, want 421 4.4.2", code, msg)
		}
		if code, _ := c.reply(); code != 0 {
			t.Error("connection not closed after 421")
		}
	})
	t.Run("a silent connection", func(t *testing.T) {
		c := dialRaw(t, f.addr)
		c.want(421, "4.4.2 No authentication")
	})
	t.Run("after STARTTLS the reply comes inside TLS", func(t *testing.T) {
		c, err := smtp.DialStartTLS(f.addr, f.client)
		if err != nil {
			t.Fatalf("STARTTLS: %v", err)
		}
		defer c.Close()
		var last error
		for range 100 {
			if last = c.Noop(); last != nil {
				break
			}
			time.Sleep(preAuth / 6)
		}
		wantSMTPCode(t, last, 421, smtp.EnhancedCode{4, 4, 2})
	})
}

func TestIdleLimitAfterAuth(t *testing.T) {
	const preAuth, idle = 200 * time.Millisecond, 1500 * time.Millisecond
	reg := prometheus.NewRegistry()
	f := testServer(t, withConfig(func(c *smtpd.Config) {
		c.PreAuthTimeout = preAuth
		c.IdleTimeout = idle
		c.ReadTimeout = time.Minute
		c.Registerer = reg
	}))
	c := login(t, f.addr)
	// Authenticated: the short pre-AUTH limit no longer applies.
	for range 5 {
		time.Sleep(preAuth / 2)
		c.send("NOOP")
		c.want(250, "")
	}
	// A transaction restarts the idle limit, NOOP and RSET never do.
	if code, msg := c.transaction(message("From: a@news.example.com")); code != 250 {
		t.Fatalf("transaction: %d %s", code, msg)
	}
	code, msg := noopUntilClosed(c, 200)
	if code != 421 || !strings.HasPrefix(msg, "4.4.2 No mail transaction") {
		t.Fatalf("after NOOPs: %d %q, want 421 4.4.2", code, msg)
	}
	if got := metricValue(t, reg, "sendergate_smtpd_connections_closed_total", "reason=idle"); got != 1 {
		t.Errorf("closed{idle} = %v, want 1", got)
	}
}

// noopUntilClosed sends NOOP and RSET every 50 ms, at most n times, and
// returns the first reply that is not 250.
func noopUntilClosed(c *rawConn, n int) (int, string) {
	c.t.Helper()
	for i := range n {
		cmd := "NOOP"
		if i%2 == 1 {
			cmd = "RSET"
		}
		if code, msg := c.cmd(cmd); code != 250 {
			return code, msg
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 250, "still open"
}

func TestCommandBudget(t *testing.T) {
	// go-smtp's line limit is off (it cut DATA lines too): command input
	// without progress is bounded instead, so no line is kept whole.
	f := testServer(t)
	c := dialRaw(t, f.addr)
	c.ehlo()
	if err := c.write([]byte("NOOP " + strings.Repeat("x", 200<<10))); err != nil { // past the budget, within the lingering close
		t.Fatal(err)
	}
	c.want(500, "5.5.2")
	if code, _ := c.reply(); code != 0 {
		t.Error("connection not closed")
	}
	// Under TLS, where the server counts encrypted bytes.
	ct, err := tls.Dial("tcp", f.tlsAddr, f.client)
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	tc := newRaw(t, ct)
	tc.want(220, "")
	if err := tc.write([]byte("EHLO " + strings.Repeat("y", 100<<10))); err != nil {
		t.Fatal(err)
	}
	tc.want(500, "5.5.2")
	// A normal session is unaffected.
	wantReply(t, mustSend(t, f.authenticated(t), message("From: a@news.example.com")), 250, ok250)
}
