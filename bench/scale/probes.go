package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

// api is an admin API client with the admin key.
type api struct {
	base, key string
	c         *http.Client
}

func newAPI(base, key string) *api {
	return &api{base: base, key: key, c: &http.Client{Timeout: 60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
}

// do sends one request and decodes a JSON answer into out (when not nil);
// a status other than want is an error with the body's text.
func (a *api) do(method, path string, body any, want int, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// timed runs f and returns how long it took.
func timed(f func() error) (time.Duration, error) {
	t := time.Now()
	err := f()
	return time.Since(t), err
}

// srcN numbers the source addresses of SMTP connections.
var srcN atomic.Uint32

// source returns the next loopback source address, 127.1.0.1 onwards:
// sendergate locks an address out after five failed AUTHs, and polling
// for a rotated password fails until the change arrives, so every
// connection comes from its own address.
func source() *net.TCPAddr {
	n := srcN.Add(1)
	return &net.TCPAddr{IP: net.IPv4(127, byte(1+n/62500%250), byte(n/250%250), byte(1+n%250))}
}

// smtpClient connects to a submission listener over plaintext loopback
// (sendergate offers AUTH before STARTTLS to loopback clients).
func smtpClient(addr string) (*smtp.Client, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: source()}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := smtp.NewClient(conn)
	if err := c.Hello("scale.localhost"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// auth connects and authenticates with AUTH PLAIN; it returns the SMTP
// reply code of the AUTH (235 on success) and the time the AUTH command
// took.
func auth(addr, user, pass string) (int, time.Duration, error) {
	c, err := smtpClient(addr)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	t := time.Now()
	err = c.Auth(sasl.NewPlainClient("", user, pass))
	d := time.Since(t)
	_ = c.Quit()
	code, err := smtpCode(err)
	return code, d, err
}

// send connects, authenticates and submits one small message from from;
// it returns the final reply code (250 accepted) and the reply text.
func send(addr, user, pass, from string) (int, string, error) {
	c, err := smtpClient(addr)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		code, err := smtpCode(err)
		return code, fmt.Sprint(err), nil
	}
	msg := "From: " + from + "\r\nTo: rcpt@example.net\r\nSubject: scale\r\n\r\nscale benchmark message\r\n"
	err = c.SendMail(from, []string{"rcpt@example.net"}, strings.NewReader(msg))
	_ = c.Quit()
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code, fmt.Sprintf("%d.%d.%d %s", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message), nil
	}
	if err != nil {
		return 0, "", err
	}
	return 250, "", nil
}

// smtpCode turns a client error into its reply code; transport errors
// stay errors.
func smtpCode(err error) (int, error) {
	if err == nil {
		return 235, nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code, nil
	}
	return 0, err
}

// dnsProbe queries the zone server over one UDP socket.
type dnsProbe struct {
	c    *dns.Client
	conn *dns.Conn
}

func newDNSProbe(addr string) (*dnsProbe, error) {
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	conn, err := c.Dial(addr)
	if err != nil {
		return nil, err
	}
	return &dnsProbe{c: c, conn: conn}, nil
}

// txt asks for the TXT records at name and returns the answer's rcode and
// the joined strings of its TXT records.
func (p *dnsProbe) txt(name string) (int, []string, time.Duration, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	q.SetEdns0(1232, false)
	r, rtt, err := p.c.ExchangeWithConn(q, p.conn)
	if err != nil {
		return 0, nil, rtt, err
	}
	var out []string
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return r.Rcode, out, rtt, nil
}

func (p *dnsProbe) close() { p.conn.Close() }

// stats summarizes a series of latencies.
type stats struct {
	N             int     `json:"n"`
	P50, P99, Max float64 `json:"-"` // milliseconds
	Total         time.Duration
}

func summarize(ds []time.Duration) stats {
	s := stats{N: len(ds)}
	if len(ds) == 0 {
		return s
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	for _, d := range sorted {
		s.Total += d
	}
	s.P50 = ms(percentile(sorted, 0.50))
	s.P99 = ms(percentile(sorted, 0.99))
	s.Max = ms(sorted[len(sorted)-1])
	return s
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (s stats) String() string {
	if s.N == 0 {
		return "none"
	}
	return fmt.Sprintf("n=%d p50 %.2f ms, p99 %.2f ms, max %.2f ms", s.N, s.P50, s.P99, s.Max)
}
