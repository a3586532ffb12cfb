package main

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

func TestSinkCountsMessages(t *testing.T) {
	for _, batch := range []bool{true, false} {
		t.Run(map[bool]string{true: "batched replies", false: "a write per reply"}[batch], func(t *testing.T) {
			testSinkCounts(t, batch)
		})
	}
}

func testSinkCounts(t *testing.T, batch bool) {
	n := &counters{}
	srv, addr, err := startSMTP("127.0.0.1:0", n, batch, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	msg := "From: a@example.com\r\nTo: b@example.net\r\nSubject: x\r\n\r\nhello\r\n"
	tests := []struct {
		name     string
		startTLS bool
		msgs     int
	}{
		{name: "plain, three messages on one connection", msgs: 3},
		{name: "STARTTLS", startTLS: true, msgs: 1},
	}
	want := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *smtp.Client
			var err error
			if tt.startTLS {
				c, err = smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
			} else {
				c, err = smtp.Dial(addr)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for range tt.msgs {
				if err := c.SendMail("a@example.com", []string{"b@example.net", "c@example.net"}, strings.NewReader(msg)); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Quit(); err != nil {
				t.Errorf("QUIT: %v", err)
			}
			want += tt.msgs
			if got := int(n.msgs.Load()); got != want {
				t.Errorf("messages = %d, want %d", got, want)
			}
			if got := int(n.rcpts.Load()); got != 2*want {
				t.Errorf("recipients = %d, want %d", got, 2*want)
			}
		})
	}
}

func TestDNSRereadsRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.json")
	stop, addr, err := serveDNS("127.0.0.1:0", path, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	tests := []struct {
		name      string
		file      string // written before the query; "" = leave as is
		query     string
		wantRcode int
		wantCNAME string
	}{
		{name: "no file yet", query: "sel._domainkey.example.com", wantRcode: dns.RcodeNameError},
		{name: "published", file: `[{"host":"sel._domainkey.example.com","value":"sel.t1.dkim.sg.localhost"}]`,
			query: "SEL._domainkey.example.com", wantCNAME: "sel.t1.dkim.sg.localhost."},
		{name: "other name", query: "mail.example.com", wantRcode: dns.RcodeNameError},
		{name: "rewritten", file: `[{"host":"sel._domainkey.example.com","value":"sel.t2.dkim.sg.localhost."}]`,
			query: "sel._domainkey.example.com", wantCNAME: "sel.t2.dkim.sg.localhost."},
		{name: "unreadable", file: `{`, query: "sel._domainkey.example.com", wantRcode: dns.RcodeServerFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.file != "" {
				if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			for _, net := range []string{"udp", "tcp"} {
				q := new(dns.Msg)
				q.SetQuestion(dns.Fqdn(tt.query), dns.TypeCNAME)
				r, _, err := (&dns.Client{Net: net}).Exchange(q, addr)
				if err != nil {
					t.Fatalf("%s: %v", net, err)
				}
				if r.Rcode != tt.wantRcode {
					t.Errorf("%s: rcode %s, want %s", net, dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.wantRcode])
				}
				got := ""
				if len(r.Answer) == 1 {
					got = r.Answer[0].(*dns.CNAME).Target
				}
				if got != tt.wantCNAME {
					t.Errorf("%s: CNAME %q, want %q", net, got, tt.wantCNAME)
				}
			}
		})
	}
}

func TestLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:25": true, "[::1]:25": true, "0.0.0.0:25": false, "192.0.2.1:25": false, "localhost:25": false} {
		if err := loopbackOnly(addr); (err == nil) != ok {
			t.Errorf("loopbackOnly(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

// TestSinkPipelined: a pipelined group gets its replies in order, and the
// message after it is counted.
func TestSinkPipelined(t *testing.T) {
	n := &counters{}
	srv, addr, err := startSMTP("127.0.0.1:0", n, true, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(conn)
	for _, step := range []struct {
		send  string
		codes []int
	}{
		{"", []int{220}},
		{"EHLO relay.test\r\n", []int{250}},
		{"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n", []int{250, 250, 250, 354}},
		{"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n", []int{250, 221}},
	} {
		if _, err := io.WriteString(conn, step.send); err != nil {
			t.Fatal(err)
		}
		for _, code := range step.codes {
			if _, _, err := tp.ReadResponse(code); err != nil {
				t.Fatalf("after %q: %v", step.send, err)
			}
		}
	}
	if got := n.msgs.Load(); got != 1 {
		t.Errorf("messages = %d, want 1", got)
	}
}
