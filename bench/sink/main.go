// Command sink is the benchmark's upstream MTA and customer DNS: an SMTP
// server (RFC 5321, STARTTLS per RFC 3207 with a throw-away self-signed
// certificate) on github.com/emersion/go-smtp that reads every message,
// discards it and counts it, and optionally a DNS server (RFC 1035, with
// github.com/miekg/dns) that answers CNAME records read from a JSON file, so
// that a benchmark can verify a sending domain without the internet.
//
// The records file is [{"host": "...", "value": "..."}] and is read again
// on every query, so a script may rewrite it at any time. The sink listens
// on loopback only and exits after -lifetime, on SIGINT or on SIGTERM,
// printing its counters.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

// counters are the sink's totals.
type counters struct {
	conns, msgs, bytes, rcpts atomic.Int64
}

func (c *counters) String() string {
	return fmt.Sprintf("connections %d, messages %d, recipients %d, bytes %d",
		c.conns.Load(), c.msgs.Load(), c.rcpts.Load(), c.bytes.Load())
}

// backend hands out sessions that count and discard.
type backend struct{ n *counters }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) {
	b.n.conns.Add(1)
	return session(b), nil
}

// session accepts any envelope and discards the message text.
type session struct{ n *counters }

func (session) Reset()                                 {}
func (session) Logout() error                          { return nil }
func (session) Mail(string, *smtp.MailOptions) error   { return nil }
func (s session) Rcpt(string, *smtp.RcptOptions) error { s.n.rcpts.Add(1); return nil }

func (s session) Data(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return fmt.Errorf("sink: read message: %w", err)
	}
	s.n.bytes.Add(n)
	s.n.msgs.Add(1)
	return nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:2525", "SMTP listen address (loopback only)")
	dnsAddr := flag.String("dns", "", "customer DNS listen address, UDP and TCP (empty = off)")
	records := flag.String("records", "", "JSON file of CNAMEs served by -dns: [{\"host\":...,\"value\":...}]")
	lifetime := flag.Duration("lifetime", 30*time.Minute, "exit after this long")
	interval := flag.Duration("stats", 0, "print counters every interval (0 = only at exit)")
	zone := flag.String("zone", "", "provider zone whose queries -dns forwards to -zone-server, following CNAMEs as a resolver does")
	zoneServer := flag.String("zone-server", "", "ip:port of sendergate's zone server (dns.listen), with -zone")
	batch := flag.Bool("batch", true, "hold the replies to pipelined commands and send them in one write, as Postfix does (false: one write per reply line, go-smtp's own behaviour)")
	flag.Parse()
	logger := log.New(os.Stderr, "sink: ", log.LstdFlags)
	if *zoneServer != "" {
		// Verification follows each CNAME to what the provider zone
		// serves: the customer DNS must also resolve the zone.
		stop, err := startResolver(*dnsAddr, *records, *zone, *zoneServer)
		if err != nil {
			logger.Fatal(err)
		}
		defer stop()
		*dnsAddr = ""
	}
	if err := run(*addr, *dnsAddr, *records, *lifetime, *interval, *batch, logger); err != nil {
		logger.Fatal(err)
	}
}

func run(addr, dnsAddr, records string, lifetime, interval time.Duration, batch bool, logger *log.Logger) error {
	n := &counters{}
	srv, _, err := startSMTP(addr, n, batch, logger)
	if err != nil {
		return err
	}
	defer srv.Close()
	if dnsAddr != "" {
		stop, err := startDNS(dnsAddr, records, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, lifetime)
	defer cancel2()
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-tick:
			logger.Print(n)
		case <-ctx.Done():
			logger.Printf("exiting (%v): %s", context.Cause(ctx), n)
			return nil
		}
	}
}

// startSMTP serves the counting SMTP server on addr and returns it with
// the address it listens on; batch holds pipelined replies (batchListener).
func startSMTP(addr string, n *counters, batch bool, logger *log.Logger) (*smtp.Server, string, error) {
	if err := loopbackOnly(addr); err != nil {
		return nil, "", err
	}
	cert, err := selfSigned()
	if err != nil {
		return nil, "", err
	}
	srv := smtp.NewServer(backend{n})
	srv.Addr = addr
	srv.Domain = "sink.localhost"
	srv.TLSConfig = cert
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	srv.MaxMessageBytes = 64 << 20
	srv.MaxRecipients = 1000
	srv.ErrorLog = logger
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("sink: listen %s: %w", addr, err)
	}
	if batch {
		l = batchListener{l}
	}
	go func() {
		if err := srv.Serve(l); err != nil {
			logger.Printf("smtp server stopped: %v", err)
		}
	}()
	logger.Printf("SMTP on %s", l.Addr())
	return srv, l.Addr().String(), nil
}

// loopbackOnly refuses a listen address that is not a loopback IP.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("sink: address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("sink: address %q: loopback IPs only", addr)
	}
	return nil
}
