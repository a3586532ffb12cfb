package relay

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestSessionReply(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		expect   int
		wantText string
		wantErr  *smtp.SMTPError // nil: success
		wantIO   bool            // a protocol or I/O error, not a reply
	}{
		{name: "expected", in: "250 2.0.0 OK queued\r\n", expect: 250, wantText: "2.0.0 OK queued"},
		{name: "prefix 25 takes 251", in: "251 will forward\r\n", expect: 25, wantText: "will forward"},
		{name: "multi-line", in: "250-first\r\n250 second\r\n", expect: 250, wantText: "first\nsecond"},
		{name: "code only", in: "354\r\n", expect: 354},
		{name: "refusal with enhanced code", in: "550 5.1.1 no such user\r\n", expect: 25,
			wantErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}},
		{name: "multi-line refusal", in: "452-4.2.2 mailbox\r\n452 4.2.2 full\r\n", expect: 250,
			wantErr: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox\nfull"}},
		{name: "refusal without enhanced code", in: "503 bad sequence\r\n", expect: 354,
			wantErr: &smtp.SMTPError{Code: 503, Message: "bad sequence"}},
		{name: "malformed", in: "25x nope\r\n", expect: 250, wantIO: true},
		{name: "continuation with another code", in: "250-a\r\n251 b\r\n", expect: 25, wantIO: true},
		{name: "connection closed", in: "250-a\r\n", expect: 250, wantIO: true},
		{name: "line too long", in: "250 " + strings.Repeat("x", readBufferSize) + "\r\n", expect: 250, wantIO: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, peer := net.Pipe()
			defer nc.Close()
			defer peer.Close()
			s := session{nc: nc, br: bufio.NewReaderSize(strings.NewReader(tt.in), readBufferSize)}
			text, err := s.reply(tt.expect, time.Minute, true)
			var reply *smtp.SMTPError
			isReply := errors.As(err, &reply)
			switch {
			case tt.wantIO:
				if err == nil || isReply {
					t.Fatalf("reply = %q, %v; want an I/O or protocol error", text, err)
				}
			case tt.wantErr != nil:
				if !isReply || *reply != *tt.wantErr {
					t.Fatalf("reply error = %#v, want %#v", err, tt.wantErr)
				}
			default:
				if err != nil || text != tt.wantText {
					t.Fatalf("reply = %q, %v; want %q", text, err, tt.wantText)
				}
			}
		})
	}
}

// deadlineConn is a net.Conn whose deadlines cost nothing (net.Pipe's
// allocate a timer), for counting the reply reader's own allocations.
type deadlineConn struct{ net.Conn }

func (deadlineConn) SetReadDeadline(time.Time) error { return nil }

func TestSessionReplyAllocs(t *testing.T) {
	r := strings.NewReader("")
	s := session{nc: deadlineConn{}, br: bufio.NewReaderSize(r, readBufferSize)}
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset("250-2.0.0 a\r\n250 2.0.0 OK\r\n")
		s.br.Reset(r)
		if _, err := s.reply(250, time.Minute, false); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("an expected reply costs %v allocations, want 0", allocs)
	}
}
