package smtpd_test

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
)

// countingListener counts the writes made to the connections it accepts:
// what the client receives per system call.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, writes: &l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// serveCounting serves plaintext submission on a counting listener.
func serveCounting(t *testing.T, f *fixture) (*countingListener, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: l}
	go func() {
		if err := f.srv.Serve(cl); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	return cl, l.Addr().String()
}

// TestPipelinedRepliesBatched: replies to pipelined commands (RFC 2920)
// all arrive, in order, in one write per group; so do the lines of a
// multiline reply.
func TestPipelinedRepliesBatched(t *testing.T) {
	f := testServer(t)
	cl, addr := serveCounting(t, f)
	c := dialRaw(t, addr)
	// The counter runs from the first write; each step below ends with
	// the server waiting for input, so the count is per group.
	step := func(name string, want int64) {
		t.Helper()
		if got := cl.writes.Swap(0); got != want {
			t.Errorf("%s: %d writes, want %d", name, got, want)
		}
	}
	step("greeting", 1)
	if ext := c.ehlo(); !strings.Contains(ext, "PIPELINING") || !strings.Contains(ext, "AUTH") {
		t.Fatalf("EHLO reply %q", ext)
	}
	step("EHLO (multiline)", 1)
	if code, msg := c.authPlain(appUser, appPass); code != 235 {
		t.Fatalf("AUTH PLAIN: %d %s", code, msg)
	}
	step("AUTH", 1)

	// One group: MAIL, a refused RCPT, an accepted RCPT, DATA.
	group := "MAIL FROM:<app@client.test>\r\nRCPT TO:<not an address\r\nRCPT TO:<rcpt@example.net>\r\nDATA\r\n"
	if err := c.write([]byte(group)); err != nil {
		t.Fatal(err)
	}
	c.want(250, "")
	if code, _ := c.reply(); code/100 != 5 {
		t.Errorf("malformed RCPT: %d, want 5xx", code)
	}
	c.want(250, "")
	c.want(354, "")
	step("MAIL RCPT RCPT DATA", 1)

	// The message, then a pipelined QUIT after the final dot: the reply
	// to the message and 221 arrive before the connection closes.
	msg := strings.ReplaceAll(sizedMessage(t, 2000), "\r\n.", "\r\n..") + ".\r\nQUIT\r\n"
	if err := c.write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.want(250, "2.0.0")
	c.want(221, "")
	if code, _ := c.reply(); code != 0 {
		t.Errorf("after 221: reply %d, want the connection closed", code)
	}
	step("message and QUIT", 1)
	if n := len(f.upstream.Messages()); n != 1 {
		t.Errorf("upstream got %d messages, want 1", n)
	}
}

// TestLockstepRepliesNotHeld: a client that sends one command and waits
// gets every reply (rawConn's deadline turns a reply held forever into a
// failure), over plaintext, STARTTLS and implicit TLS.
func TestLockstepRepliesNotHeld(t *testing.T) {
	f := testServer(t)
	dialers := map[string]func(t *testing.T) *rawConn{
		"plaintext": func(t *testing.T) *rawConn { return dialRaw(t, f.addr) },
		"STARTTLS": func(t *testing.T) *rawConn {
			c := dialRaw(t, f.addr)
			c.ehlo()
			c.send("STARTTLS")
			c.want(220, "")
			tc := tls.Client(c.conn, f.client)
			if err := tc.Handshake(); err != nil {
				t.Fatalf("handshake: %v", err)
			}
			return newRaw(t, tc)
		},
		"implicit TLS": func(t *testing.T) *rawConn {
			tc, err := tls.Dial("tcp", f.tlsAddr, f.client)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tc.Close() })
			c := newRaw(t, tc)
			c.want(220, "")
			return c
		},
	}
	for name, dial := range dialers {
		t.Run(name, func(t *testing.T) {
			c := dial(t)
			c.ehlo()
			if code, msg := c.authPlain(appUser, appPass); code != 235 {
				t.Fatalf("AUTH PLAIN: %d %s", code, msg)
			}
			for _, cmd := range []struct {
				line string
				code int
			}{
				{"NOOP", 250},
				{"BOGUS", 501},
				{"RSET", 250},
				{"RCPT TO:<rcpt@example.net>", 502},
			} {
				if code, msg := c.cmd(cmd.line); code != cmd.code {
					t.Errorf("%s: %d %s, want %d", cmd.line, code, msg, cmd.code)
				}
			}
			if code, msg := c.transaction(sizedMessage(t, 3000)); code != 250 {
				t.Errorf("message: %d %s", code, msg)
			}
			if code, msg := c.transaction(sizedMessage(t, 100<<10)); code != 250 {
				t.Errorf("message of 100 KiB: %d %s", code, msg)
			}
			if code, msg := c.cmd("QUIT"); code != 221 {
				t.Errorf("QUIT: %d %s", code, msg)
			}
			if _, err := c.conn.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("after QUIT: %v, want EOF", err)
			}
		})
	}
}
