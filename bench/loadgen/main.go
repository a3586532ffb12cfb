// Command loadgen is sendergate's SMTP load generator: a closed-loop
// client (RFC 5321, with STARTTLS per RFC 3207 and AUTH PLAIN per RFC 4954
// and RFC 4616) built on github.com/emersion/go-smtp's client.
//
// Each of -c workers opens a connection (connect, greeting, EHLO, optional
// STARTTLS and AUTH), sends -per-conn messages on it (MAIL, RCPT, DATA,
// each waiting for its reply, or pipelined with -pipeline), quits and
// opens the next one, until -n messages have been started or
// -duration has passed, whichever comes first. Two latencies are recorded:
//
//   - message: from writing MAIL FROM to reading the reply to the final
//     "." of DATA (for sendergate that reply is the upstream's verdict);
//   - setup: from dial to the end of AUTH (or EHLO/STARTTLS without AUTH),
//     once per connection.
//
// With -per-conn 1 the setup is paid by every message; "total" latency
// (setup + message) is then reported as well. It only talks to loopback
// addresses and always stops: -n, -duration and the hard cap -max-time.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/bench/internal/loopback"
)

// options are the command-line flags.
type options struct {
	addr          string
	conns         int
	perConn       int
	total         int
	duration      time.Duration
	maxTime       time.Duration
	size          int
	startTLS      bool
	user, pass    string
	from, to      string
	opTimeout     time.Duration
	pipeline      bool
	label, format string
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:1587", "SMTP server host:port (loopback only)")
	fs.IntVar(&o.conns, "c", 8, "concurrent connections (workers)")
	fs.IntVar(&o.perConn, "per-conn", 50, "messages per connection; 1 = connect, EHLO, STARTTLS, AUTH for every message")
	fs.IntVar(&o.total, "n", 0, "total messages (0 = c*per-conn when -duration is 0)")
	fs.DurationVar(&o.duration, "duration", 0, "stop starting messages after this long (0 = use -n)")
	fs.DurationVar(&o.maxTime, "max-time", 5*time.Minute, "hard cap on the whole run")
	fs.IntVar(&o.size, "size", 10<<10, "message size in bytes, header included")
	fs.BoolVar(&o.startTLS, "tls", false, "STARTTLS before AUTH (certificate not verified)")
	fs.StringVar(&o.user, "user", "", "AUTH PLAIN username (empty = no AUTH)")
	fs.StringVar(&o.pass, "pass", "", "AUTH PLAIN password")
	fs.StringVar(&o.from, "from", "bench@example.com", "From header and envelope sender")
	fs.StringVar(&o.to, "to", "rcpt@example.net", "recipient")
	fs.DurationVar(&o.opTimeout, "timeout", 30*time.Second, "I/O deadline of each connection step and message")
	fs.BoolVar(&o.pipeline, "pipeline", false, "pipeline MAIL, RCPT and DATA in one write and the message with its final dot in another (RFC 2920, as Postfix's smtp client), instead of waiting for each reply")
	fs.StringVar(&o.label, "label", "", "scenario name for -format row")
	fs.StringVar(&o.format, "format", "text", "text | row (one markdown table row)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.conns < 1 || o.perConn < 1 || o.size < 256 || o.total < 0 || o.duration < 0 {
		return o, errors.New("loadgen: -c and -per-conn must be >= 1, -size >= 256, -n and -duration >= 0")
	}
	if o.total == 0 && o.duration == 0 {
		o.total = o.conns * o.perConn
	}
	if o.format != "text" && o.format != "row" {
		return o, fmt.Errorf("loadgen: -format %q: want text or row", o.format)
	}
	return o, loopback.Check(o.addr)
}

// stats is what one worker measured; merged at the end.
type stats struct {
	msg, setup, total []time.Duration
	errs              map[string]int
	conns             int
}

func (s *stats) fail(err error) {
	s.errs[errKey(err)]++
}

func (s *stats) merge(o *stats) {
	s.msg = append(s.msg, o.msg...)
	s.setup = append(s.setup, o.setup...)
	s.total = append(s.total, o.total...)
	for k, v := range o.errs {
		s.errs[k] += v
	}
	s.conns += o.conns
}

// errKey classifies an error by its SMTP reply code, or as a transport
// error.
func errKey(err error) string {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return fmt.Sprintf("%d %d.%d.%d", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "net"
}

// run is one load run: workers claim message slots until the budget is
// spent.
type run struct {
	o        options
	body     []byte
	claimed  atomic.Int64
	deadline time.Time
	ctx      context.Context
	seq      atomic.Int64
}

// claim reserves the messages of the next connection: up to -per-conn,
// fewer at the end of -n, none once the run is over.
func (r *run) claim() int {
	if r.over() {
		return 0
	}
	if r.o.total == 0 {
		return r.o.perConn
	}
	per := int64(r.o.perConn)
	start := r.claimed.Add(per) - per
	return int(min(per, max(int64(r.o.total)-start, 0)))
}

// over reports whether -duration or -max-time has passed.
func (r *run) over() bool {
	return r.ctx.Err() != nil || (r.o.duration > 0 && time.Now().After(r.deadline))
}

func (r *run) worker(st *stats) {
	for n := r.claim(); n > 0; n = r.claim() {
		t0 := time.Now()
		c, err := r.dial()
		setup := time.Since(t0)
		if err != nil {
			st.fail(err)
			continue
		}
		st.conns++
		st.setup = append(st.setup, setup)
		for i := 0; i < n && (i == 0 || !r.over()); i++ {
			d, err := c.send(r)
			if err == nil {
				st.msg = append(st.msg, d)
				if r.o.perConn == 1 {
					st.total = append(st.total, setup+d)
				}
				continue
			}
			st.fail(err)
			if k := errKey(err); k == "net" || k == "timeout" {
				break
			}
			_ = c.Reset()
		}
		_ = c.Quit()
		_ = c.Close()
	}
}

// dial connects a client of the kind -pipeline asks for.
func (r *run) dial() (client, error) {
	if r.o.pipeline {
		return r.dialPipelined()
	}
	c, err := r.connect()
	if err != nil {
		return nil, err
	}
	return lockstep{c}, nil
}

// connect dials and runs the greeting, EHLO, STARTTLS and AUTH under one
// deadline; later commands are bounded by the client's own timeouts.
func (r *run) connect() (*smtp.Client, error) {
	conn, err := net.DialTimeout("tcp", r.o.addr, r.o.opTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	_ = conn.SetDeadline(time.Now().Add(r.o.opTimeout))
	var c *smtp.Client
	if r.o.startTLS {
		c, err = smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("starttls: %w", err)
		}
	} else {
		c = smtp.NewClient(conn)
		if err := c.Hello("loadgen.localhost"); err != nil {
			c.Close()
			return nil, fmt.Errorf("ehlo: %w", err)
		}
	}
	if r.o.user != "" {
		if err := c.Auth(sasl.NewPlainClient("", r.o.user, r.o.pass)); err != nil {
			c.Close()
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	_ = conn.SetDeadline(time.Time{})
	c.CommandTimeout, c.SubmissionTimeout = r.o.opTimeout, r.o.opTimeout
	return c, nil
}

// send runs one transaction and returns the time from MAIL to the reply to
// the end of DATA.
func (r *run) send(c *smtp.Client) (time.Duration, error) {
	t0 := time.Now()
	if err := c.Mail(r.o.from, nil); err != nil {
		return 0, err
	}
	if err := c.Rcpt(r.o.to, nil); err != nil {
		return 0, err
	}
	w, err := c.Data()
	if err != nil {
		return 0, err
	}
	hdr := fmt.Sprintf("Message-ID: <%d.%d@loadgen.localhost>\r\n", os.Getpid(), r.seq.Add(1))
	if _, err := io.WriteString(w, hdr); err != nil {
		return 0, err
	}
	if _, err := w.Write(r.body); err != nil {
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}
