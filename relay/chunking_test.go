package relay_test

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/relay"
	"github.com/sendergate/sendergate/relay/relaytest"
)

// TestUpstreamChunking: a message to one recipient goes out with BDAT
// (RFC 3030) in the write that carries MAIL and RCPT, and the upstream
// receives the same octets as with DATA.
func TestUpstreamChunking(t *testing.T) {
	tests := []struct {
		name    string
		opts    []relaytest.Option
		rcpts   []string
		large   bool // the first message over 256 KiB
		chunked bool
	}{
		{name: "one recipient", rcpts: []string{"b@example.net"}, chunked: true},
		{name: "two recipients take DATA", rcpts: []string{"b@example.net", "c@example.org"}},
		{name: "upstream without CHUNKING", opts: []relaytest.Option{relaytest.WithoutChunking()}, rcpts: []string{"b@example.net"}},
		{name: "upstream without PIPELINING", opts: []relaytest.Option{relaytest.WithoutPipelining()}, rcpts: []string{"b@example.net"}},
		{name: "large message takes DATA", rcpts: []string{"b@example.net"}, large: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := relaytest.NewServer(t, tt.opts...)
			u := newUpstream(t, relay.UpstreamConfig{Addr: srv.Addr})
			messages := []*relay.Message{
				testMessage("dots", tt.rcpts...),
				{ID: "cr", From: "b@rp.example.com", To: tt.rcpts, Data: net.Buffers{[]byte("Subject: cr\r\n\r\nends in CR\r")}},
				{ID: "open", From: "b@rp.example.com", To: tt.rcpts, Data: net.Buffers{[]byte("Subject: open\r\n\r\nno line end"), nil}},
				{ID: "empty", From: "", To: tt.rcpts},
			}
			if tt.large {
				messages[0].Data = append(messages[0].Data, bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), 4200))
			}
			want := map[string]string{
				"cr":    "Subject: cr\r\n\r\nends in CR\r\n",
				"open":  "Subject: open\r\n\r\nno line end\r\n",
				"empty": "\r\n",
			}
			for _, m := range messages {
				if err := u.Send(context.Background(), m); err != nil {
					t.Fatalf("Send %s: %v", m.ID, err)
				}
			}
			got := srv.Messages()
			if len(got) != len(messages) {
				t.Fatalf("server got %d messages, want %d", len(got), len(messages))
			}
			for i, m := range messages {
				w, ok := want[m.ID]
				if !ok {
					w = string(flat(m.Data))
				}
				if string(got[i].Data) != w || got[i].From != m.From || len(got[i].To) != len(tt.rcpts) {
					t.Errorf("%s: server got %q from %q to %q, want %q", m.ID, got[i].Data, got[i].From, got[i].To, w)
				}
			}
			reads := srv.MailReads()
			if len(reads) != len(messages) {
				t.Fatalf("server saw MAIL in %d reads, want %d", len(reads), len(messages))
			}
			first := reads[0]
			chunked := strings.Contains(first, "\r\nBDAT ") && strings.Contains(first, "Hello.\r\n.\r\n..leading dots")
			if chunked != tt.chunked {
				t.Errorf("read with MAIL = %q; BDAT with the content = %v, want %v", first, chunked, tt.chunked)
			}
			if tt.chunked && !strings.Contains(first, "\r\nBDAT "+strconv.Itoa(len(flat(messages[0].Data)))+" LAST\r\n") {
				t.Errorf("read with MAIL = %q, want BDAT with the content's size", first)
			}
			// The later messages go out on the pooled connection, found
			// open by the peek, so chunked as well.
			for i, r := range reads[1:] {
				if strings.Contains(r, "\r\nBDAT ") != (tt.chunked || tt.large) {
					t.Errorf("message %d: read with MAIL = %q, want BDAT %v", i+1, r, tt.chunked)
				}
			}
			if n := srv.Connections(); n != 1 {
				t.Errorf("connections = %d, want 1", n)
			}
		})
	}
}

// TestUpstreamChunkingRefusals: with BDAT the first refusal is returned,
// nothing is delivered, and RSET keeps the connection.
func TestUpstreamChunkingRefusals(t *testing.T) {
	reply := func(code int, ec smtp.EnhancedCode, msg string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
	}
	tests := []struct {
		name  string
		setup func(*relaytest.Server)
		want  *smtp.SMTPError
	}{
		{"MAIL 5xx", func(s *relaytest.Server) {
			s.SetMailReply(reply(550, smtp.EnhancedCode{5, 7, 1}, "sender blocked"))
		}, reply(550, smtp.EnhancedCode{5, 7, 1}, "sender blocked")},
		{"RCPT 4xx", func(s *relaytest.Server) {
			s.SetRcptReply("b@example.net", reply(452, smtp.EnhancedCode{4, 2, 2}, "mailbox full"))
		}, reply(452, smtp.EnhancedCode{4, 2, 2}, "mailbox full")},
		{"BDAT 5xx", func(s *relaytest.Server) {
			s.SetDataReply(reply(554, smtp.EnhancedCode{5, 6, 0}, "content rejected"))
		}, reply(554, smtp.EnhancedCode{5, 6, 0}, "content rejected")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := relaytest.NewServer(t)
			u := newUpstream(t, relay.UpstreamConfig{Addr: srv.Addr})
			// A first message makes the refused one go out on a pooled
			// connection (checked open, then chunked).
			if err := u.Send(context.Background(), testMessage("first", "b@example.net")); err != nil {
				t.Fatalf("first Send: %v", err)
			}
			tt.setup(srv)
			got := smtpErr(t, u.Send(context.Background(), testMessage("refused", "b@example.net")))
			if got.Code != tt.want.Code || got.EnhancedCode != tt.want.EnhancedCode || got.Message != tt.want.Message {
				t.Errorf("Send error = %d %v %q, want %d %v %q",
					got.Code, got.EnhancedCode, got.Message, tt.want.Code, tt.want.EnhancedCode, tt.want.Message)
			}
			srv.SetMailReply(nil)
			srv.SetRcptReply("b@example.net", nil)
			srv.SetDataReply(nil)
			if err := u.Send(context.Background(), testMessage("after", "b@example.net")); err != nil {
				t.Fatalf("Send after refusal: %v", err)
			}
			msgs := srv.Messages()
			if len(msgs) != 2 || !bytes.Contains(msgs[1].Data, []byte("Subject: after")) {
				t.Fatalf("server got %d messages, want first and after only", len(msgs))
			}
			if n := srv.Connections(); n != 1 {
				t.Errorf("connections = %d, want 1 (RSET after the refusal)", n)
			}
		})
	}
}
