// Command policyload measures sendergate's Postfix policy delegation
// service (Postfix SMTPD_POLICY_README: name=value lines, a blank line ends
// a request, the reply is "action=..." and a blank line; many requests per
// connection). One writer pipelines requests over one connection (or -c
// connections) while a reader counts the replies; -window bounds the
// requests in flight (1 = strict request/reply, as Postfix itself does).
// Requests alternate between an allowed and a refused envelope sender so
// both decision paths are exercised. Loopback only; bounded by -n and
// -max-time.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sendergate/sendergate/bench/internal/loopback"
)

// options are the command-line flags.
type options struct {
	addr, user, allow, deny string
	n, conns, window        int
	maxTime                 time.Duration
	label, format           string
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:10040", "policy service host:port (loopback only)")
	flag.StringVar(&o.user, "user", "app@bench", "sasl_username of every request")
	flag.StringVar(&o.allow, "allow", "a@rsa.bench.example", "envelope sender expected to get DUNNO")
	flag.StringVar(&o.deny, "deny", "a@unknown.example", "envelope sender expected to get REJECT")
	flag.IntVar(&o.n, "n", 200000, "requests per connection")
	flag.IntVar(&o.conns, "c", 1, "connections, each with its own pipeline")
	flag.IntVar(&o.window, "window", 0, "max requests in flight per connection (0 = unbounded, 1 = lockstep)")
	flag.DurationVar(&o.maxTime, "max-time", 2*time.Minute, "hard cap on the run")
	flag.StringVar(&o.label, "label", "policyd", "scenario name for -format row")
	flag.StringVar(&o.format, "format", "text", "text | row (one markdown table row)")
	flag.Parse()
	if err := loopback.Check(o.addr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// request is a smtpd_access_policy request as Postfix 3.x sends it at RCPT.
func request(user, sender string) string {
	return "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n" +
		"client_address=127.0.0.1\nclient_name=localhost\nreverse_client_name=localhost\n" +
		"helo_name=client.example\nqueue_id=\nsender=" + sender + "\nrecipient=rcpt@dest.example\n" +
		"recipient_count=0\nsize=10240\nsasl_method=PLAIN\nsasl_username=" + user + "\nsasl_sender=\n" +
		"ccert_subject=\nccert_issuer=\nccert_fingerprint=\nencryption_protocol=\nencryption_cipher=\n" +
		"encryption_keysize=0\netrn_domain=\nstress=\ninstance=1a2b.5f3c.1\n\n"
}

// tally counts replies by action word.
type tally struct {
	actions    map[string]int
	mismatched int
}

func run(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.maxTime)
	defer cancel()
	reqs := [2]string{request(o.user, o.allow), request(o.user, o.deny)}
	tallies := make([]tally, o.conns)
	errs := make([]error, o.conns)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range o.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tallies[i], errs[i] = pipeline(ctx, o, reqs)
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	total := tally{actions: map[string]int{}}
	for _, t := range tallies {
		for k, v := range t.actions {
			total.actions[k] += v
		}
		total.mismatched += t.mismatched
	}
	n := 0
	for _, v := range total.actions {
		n += v
	}
	report(o, total, n, wall)
	return errors.Join(errs...)
}

func report(o options, t tally, n int, wall time.Duration) {
	rate := float64(n) / wall.Seconds()
	acts := fmt.Sprintf("DUNNO %d, REJECT %d, other %d, unexpected %d",
		t.actions["DUNNO"], t.actions["REJECT"], n-t.actions["DUNNO"]-t.actions["REJECT"], t.mismatched)
	if o.format == "row" {
		fmt.Printf("| %s | %d | %d | %d | %.0f | %.2f | %s |\n", o.label, o.conns, o.window, n, rate,
			float64(wall.Microseconds())/float64(max(n, 1))*float64(o.conns), acts)
		return
	}
	fmt.Printf("%d requests over %d connection(s), window %d, in %s: %.0f req/s\nreplies: %s\n",
		n, o.conns, o.window, wall.Round(time.Millisecond), rate, acts)
}

// pipeline writes o.n requests on one connection while reading replies.
func pipeline(ctx context.Context, o options, reqs [2]string) (tally, error) {
	t := tally{actions: map[string]int{}}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return t, fmt.Errorf("policyload: dial: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	window := o.window
	if window <= 0 {
		window = o.n
	}
	credits := make(chan struct{}, window)
	werr := make(chan error, 1)
	go func() { werr <- writeAll(c, o.n, reqs, credits) }()
	r := bufio.NewReaderSize(c, 64<<10)
	for i := range o.n {
		action, err := readReply(r)
		if err != nil {
			return t, fmt.Errorf("policyload: reply %d: %w", i, err)
		}
		<-credits
		word, _, _ := strings.Cut(action, " ")
		t.actions[word]++
		if (i%2 == 0) != (word == "DUNNO") {
			t.mismatched++
		}
	}
	return t, <-werr
}

// writeAll sends n requests, taking one credit each; it flushes when it
// would block on the window so that lockstep mode does not deadlock.
func writeAll(c net.Conn, n int, reqs [2]string, credits chan struct{}) error {
	w := bufio.NewWriterSize(c, 64<<10)
	for i := range n {
		select {
		case credits <- struct{}{}:
		default:
			if err := w.Flush(); err != nil {
				return fmt.Errorf("policyload: write: %w", err)
			}
			credits <- struct{}{}
		}
		if _, err := w.WriteString(reqs[i%2]); err != nil {
			return fmt.Errorf("policyload: write: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("policyload: write: %w", err)
	}
	return nil
}

// readReply reads "action=..." and the blank line that ends a reply; the
// end of input inside a reply is io.ErrUnexpectedEOF.
func readReply(r *bufio.Reader) (string, error) {
	var action string
	for started := false; ; started = true {
		line, err := r.ReadString('\n')
		if err == io.EOF && (started || line != "") {
			return "", io.ErrUnexpectedEOF
		}
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if action == "" {
				return "", errors.New("reply without action")
			}
			return action, nil
		}
		if v, ok := strings.CutPrefix(line, "action="); ok {
			action = v
		}
	}
}
