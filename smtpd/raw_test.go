package smtpd_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// rawConn is an SMTP client that writes exactly what a test says, for the
// cases go-smtp's client cannot produce (pipelined or malformed input,
// stalls, several mechanisms in one session).
type rawConn struct {
	t    testing.TB
	conn net.Conn
	tp   *textproto.Conn
}

// dialFrom connects to addr from the loopback address from ("" for the
// default); Linux routes all of 127.0.0.0/8 to the loopback interface.
func dialFrom(t testing.TB, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newRaw wraps c; nothing is read yet.
func newRaw(t testing.TB, c net.Conn) *rawConn {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a broken test fails, it does not hang
	return &rawConn{t: t, conn: c, tp: textproto.NewConn(c)}
}

// dialRaw connects from the default address and reads the greeting.
func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c := newRaw(t, dialFrom(t, "", addr))
	c.want(220, "")
	return c
}

// reply reads one (possibly multiline) reply; code 0 means the connection
// ended instead.
func (c *rawConn) reply() (int, string) {
	c.t.Helper()
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil {
		var pe textproto.ProtocolError
		if errors.Is(err, io.EOF) || errors.As(err, &pe) || isConnError(err) {
			return 0, err.Error()
		}
		c.t.Fatalf("read reply: %v", err)
	}
	return code, msg
}

func isConnError(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}

// want reads a reply and fails unless it has code and starts with prefix
// (an enhanced code such as "4.4.2", or "").
func (c *rawConn) want(code int, prefix string) string {
	c.t.Helper()
	got, msg := c.reply()
	if got != code || !strings.HasPrefix(msg, prefix) {
		c.t.Fatalf("reply %d %q, want %d %s", got, msg, code, prefix)
	}
	return msg
}

// send writes one line (CRLF added).
func (c *rawConn) send(line string) {
	c.t.Helper()
	if err := c.tp.PrintfLine("%s", line); err != nil {
		c.t.Fatalf("write %.40q: %v", line, err)
	}
}

// cmd sends line and returns the reply.
func (c *rawConn) cmd(line string) (int, string) {
	c.t.Helper()
	c.send(line)
	return c.reply()
}

// write writes raw bytes.
func (c *rawConn) write(b []byte) error {
	_, err := c.conn.Write(b)
	return err
}

// authPlain runs AUTH PLAIN and returns the reply.
func (c *rawConn) authPlain(user, pass string) (int, string) {
	c.t.Helper()
	return c.cmd("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)))
}

// authLogin runs AUTH LOGIN and returns the final reply.
func (c *rawConn) authLogin(user, pass string) (int, string) {
	c.t.Helper()
	c.send("AUTH LOGIN")
	c.want(334, "")
	c.send(base64.StdEncoding.EncodeToString([]byte(user)))
	c.want(334, "")
	return c.cmd(base64.StdEncoding.EncodeToString([]byte(pass)))
}

// ehlo says EHLO and returns the reply text (the extensions).
func (c *rawConn) ehlo() string {
	c.t.Helper()
	c.send("EHLO client.test")
	return c.want(250, "")
}

// login dials addr, says EHLO and authenticates as app with PLAIN.
func login(t testing.TB, addr string) *rawConn {
	t.Helper()
	c := dialRaw(t, addr)
	c.ehlo()
	if code, msg := c.authPlain(appUser, appPass); code != 235 {
		t.Fatalf("AUTH PLAIN: %d %s", code, msg)
	}
	return c
}

// startData sends MAIL, RCPT and DATA.
func (c *rawConn) startData(mailArgs string) {
	c.t.Helper()
	c.send("MAIL FROM:<app@client.test>" + mailArgs)
	c.want(250, "")
	c.send("RCPT TO:<rcpt@example.net>")
	c.want(250, "")
	c.send("DATA")
	c.want(354, "")
}

// replyAsync reads the next reply on a goroutine: for a test that keeps
// writing until the server answers.
func (c *rawConn) replyAsync() <-chan string {
	ch := make(chan string, 1)
	go func() {
		code, msg, err := c.tp.ReadResponse(0)
		if err != nil {
			ch <- "error: " + err.Error()
			return
		}
		ch <- fmt.Sprintf("%d %s", code, msg)
	}()
	return ch
}

// transaction sends MAIL, RCPT and DATA and the message (dot-stuffed, the
// final dot added) and returns the reply to it.
func (c *rawConn) transaction(message string) (int, string) {
	c.t.Helper()
	c.startData("")
	w := c.tp.DotWriter()
	if _, err := io.WriteString(w, message); err != nil {
		c.t.Fatalf("write message: %v", err)
	}
	if err := w.Close(); err != nil {
		c.t.Fatalf("end message: %v", err)
	}
	return c.reply()
}

// sizedMessage returns a message from the verified domain of exactly n
// octets (CRLF line ends, no line starting with a dot, lines of at most 80
// octets), as the server counts it.
func sizedMessage(t testing.TB, n int) string {
	t.Helper()
	head := "From: a@news.example.com\r\nTo: rcpt@example.net\r\nSubject: sized\r\n\r\n"
	var b strings.Builder
	b.WriteString(head)
	for b.Len() < n {
		left := n - b.Len()
		switch {
		case left >= 83:
			b.WriteString(strings.Repeat("x", 78) + "\r\n")
		case left >= 3:
			b.WriteString(strings.Repeat("y", left-2) + "\r\n")
		default:
			t.Fatalf("cannot end a message of %d octets on a line boundary", n)
		}
	}
	return b.String()
}

// wantSMTPCode checks an error of go-smtp's client.
func wantSMTPCode(t testing.TB, err error, code int, enh smtp.EnhancedCode) {
	t.Helper()
	wantReply(t, asSMTPError(t, err), code, enh)
}
