package main

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// client is one connection's transactions: go-smtp's client, which waits
// for every reply (lockstep), or pipeClient (-pipeline).
type client interface {
	send(r *run) (time.Duration, error)
	Reset() error
	Quit() error
	Close() error
}

// lockstep is go-smtp's client.
type lockstep struct{ *smtp.Client }

func (c lockstep) send(r *run) (time.Duration, error) { return r.send(c.Client) }

// pipeClient pipelines as Postfix's smtp client does (RFC 2920): MAIL,
// RCPT and DATA in one write, their replies read after it, then the
// message and its final dot in one write. The session setup (EHLO,
// STARTTLS, AUTH PLAIN) waits for each reply.
type pipeClient struct {
	conn    net.Conn // the TCP conn, or TLS over it after STARTTLS
	bw      *bufio.Writer
	tr      *textproto.Reader
	timeout time.Duration
}

// dialPipelined dials and runs the greeting, EHLO, STARTTLS and AUTH.
func (r *run) dialPipelined() (*pipeClient, error) {
	conn, err := net.DialTimeout("tcp", r.o.addr, r.o.opTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	c := newPipeClient(conn, r.o.opTimeout)
	if err := c.setup(r.o); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func newPipeClient(conn net.Conn, timeout time.Duration) *pipeClient {
	return &pipeClient{conn: conn, bw: bufio.NewWriterSize(conn, 64<<10),
		tr: textproto.NewReader(bufio.NewReader(conn)), timeout: timeout}
}

func (c *pipeClient) setup(o options) error {
	if _, err := c.replies(220); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if err := c.cmd(250, "EHLO loadgen.localhost"); err != nil {
		return fmt.Errorf("ehlo: %w", err)
	}
	if o.startTLS {
		if err := c.cmd(220, "STARTTLS"); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
		tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
		*c = *newPipeClient(tc, c.timeout)
		if err := c.cmd(250, "EHLO loadgen.localhost"); err != nil {
			return fmt.Errorf("ehlo after starttls: %w", err)
		}
	}
	if o.user != "" {
		plain := base64.StdEncoding.EncodeToString([]byte("\x00" + o.user + "\x00" + o.pass))
		if err := c.cmd(235, "AUTH PLAIN "+plain); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	return nil
}

// cmd writes the lines in one write and reads one reply per line; the
// last must have code want, the others 2xx. The first refusal is returned.
func (c *pipeClient) cmd(want int, lines ...string) error {
	for _, l := range lines {
		c.bw.WriteString(l)
		c.bw.WriteString("\r\n")
	}
	if err := c.flush(); err != nil {
		return err
	}
	codes := make([]int, len(lines))
	for i := range codes {
		codes[i] = 2
	}
	codes[len(codes)-1] = want
	_, err := c.replies(codes...)
	return err
}

func (c *pipeClient) flush() error {
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	return c.bw.Flush()
}

// replies reads one reply per code; the first that does not match is
// returned as an *smtp.SMTPError, after the others were read.
func (c *pipeClient) replies(codes ...int) (string, error) {
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	var first error
	var msg string
	for _, want := range codes {
		code, m, err := c.tr.ReadResponse(want)
		var te *textproto.Error
		switch {
		case errors.As(err, &te):
			if first == nil {
				first = toSMTPError(code, m)
			}
		case err != nil:
			return "", err
		}
		msg = m
	}
	return msg, first
}

// toSMTPError splits the enhanced code (RFC 2034) off the reply text.
func toSMTPError(code int, msg string) *smtp.SMTPError {
	e := &smtp.SMTPError{Code: code, Message: msg}
	enh, rest, ok := strings.Cut(msg, " ")
	parts := strings.Split(enh, ".")
	if !ok || len(parts) != 3 {
		return e
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return e
		}
		e.EnhancedCode[i] = n
	}
	e.Message = rest
	return e
}

// send runs one transaction: two writes, two waits for replies.
func (c *pipeClient) send(r *run) (time.Duration, error) {
	t0 := time.Now()
	if err := c.cmd(354, "MAIL FROM:<"+r.o.from+">", "RCPT TO:<"+r.o.to+">", "DATA"); err != nil {
		return 0, err
	}
	w := textproto.NewWriter(c.bw).DotWriter()
	fmt.Fprintf(w, "Message-ID: <%d.%d@loadgen.localhost>\r\n", os.Getpid(), r.seq.Add(1))
	if _, err := w.Write(r.body); err != nil {
		return 0, err
	}
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	if err := w.Close(); err != nil { // the final dot, and the one write
		return 0, err
	}
	if _, err := c.replies(250); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// Reset implements client (RSET after a refusal).
func (c *pipeClient) Reset() error { return c.cmd(250, "RSET") }

// Quit implements client.
func (c *pipeClient) Quit() error { return c.cmd(221, "QUIT") }

// Close implements client.
func (c *pipeClient) Close() error { return c.conn.Close() }
