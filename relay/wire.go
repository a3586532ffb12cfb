package relay

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// The mail transaction itself (MAIL, RCPT, DATA, the content, RSET) is
// spoken here, on the session's connection, rather than through go-smtp's
// client, which is only used for the greeting, EHLO, AUTH and QUIT: its
// client cannot pipeline (RFC 2920) and writes the content a byte at a
// time. The commands are those go-smtp would send, parameter for parameter.

// Buffer sizes per connection, allocated once when it is dialed.
const (
	writeBufferSize = 16 << 10 // most messages go out in one or two writes
	readBufferSize  = 2 << 10  // one reply line at most (go-smtp's limit: 2000)
)

// session is what a pooled connection needs to run transactions itself.
type session struct {
	nc         net.Conn // the conn the SMTP session speaks on (TLS after STARTTLS)
	bw         *bufio.Writer
	br         *bufio.Reader
	dw         dotWriter
	line       []byte // scratch for one command
	pipelining bool   // RFC 2920
	chunking   bool   // RFC 3030
	ext8bit    bool   // RFC 6152
	extSize    bool   // RFC 1870
	extUTF8    bool   // RFC 6531
}

// newSession prepares transactions on nc; client has run EHLO on it.
func newSession(nc net.Conn, client *smtp.Client) session {
	has := func(ext string) bool { ok, _ := client.Extension(ext); return ok }
	return session{
		nc:         nc,
		bw:         bufio.NewWriterSize(nc, writeBufferSize),
		br:         bufio.NewReaderSize(nc, readBufferSize),
		line:       make([]byte, 0, 256),
		pipelining: has("PIPELINING"),
		chunking:   has("CHUNKING"),
		ext8bit:    has("8BITMIME"),
		extSize:    has("SIZE"),
		extUTF8:    has("SMTPUTF8"),
	}
}

// writeMail buffers MAIL FROM with the parameters go-smtp's Client.Mail
// adds: BODY=8BITMIME and SIZE when offered, SMTPUTF8 when asked for.
func (s *session) writeMail(from string, size int64, utf8 bool) {
	b := append(s.line[:0], "MAIL FROM:<"...)
	b = append(b, from...)
	b = append(b, '>')
	if s.ext8bit {
		b = append(b, " BODY=8BITMIME"...)
	}
	if s.extSize && size != 0 {
		b = append(b, " SIZE="...)
		b = strconv.AppendInt(b, size, 10)
	}
	if utf8 {
		b = append(b, " SMTPUTF8"...)
	}
	b = append(b, "\r\n"...)
	s.bw.Write(b)
	s.line = b
}

// writeBDAT buffers the command of the one and last chunk (RFC 3030 2).
func (s *session) writeBDAT(size int64) {
	b := append(s.line[:0], "BDAT "...)
	b = strconv.AppendInt(b, size, 10)
	b = append(b, " LAST\r\n"...)
	s.bw.Write(b)
	s.line = b
}

// writeRcpt buffers RCPT TO.
func (s *session) writeRcpt(to string) {
	b := append(s.line[:0], "RCPT TO:<"...)
	b = append(b, to...)
	b = append(b, ">\r\n"...)
	s.bw.Write(b)
	s.line = b
}

// reply reads one reply within timeout. A code other than expect (a
// prefix: 25 accepts 250 and 251, as textproto.Reader.ReadResponse does)
// comes back as a bare *smtp.SMTPError; anything else is I/O. The text of
// an expected reply is only returned (and allocated) when text is set.
func (s *session) reply(expect int, timeout time.Duration, text bool) (string, error) {
	if err := s.nc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return "", fmt.Errorf("set deadline: %w", err)
	}
	var code int
	var msg []byte
	keep := text
	for first := true; ; first = false {
		line, err := s.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", textproto.ProtocolError("reply line too long")
		}
		if err != nil {
			return "", err
		}
		line = bytes.TrimRight(line, "\r\n")
		c, last, ok := parseReplyLine(line)
		if !ok || (!first && c != code) {
			return "", textproto.ProtocolError("malformed reply: " + string(line))
		}
		if first {
			code = c
			keep = keep || !codeMatches(code, expect)
		}
		if keep {
			if !first {
				msg = append(msg, '\n')
			}
			if len(line) > 4 {
				msg = append(msg, line[4:]...)
			}
		}
		if last {
			break
		}
	}
	if !codeMatches(code, expect) {
		return "", toSMTPError(&textproto.Error{Code: code, Msg: string(msg)})
	}
	return string(msg), nil
}

// parseReplyLine splits "250-text" or "250 text" (RFC 5321 4.2).
func parseReplyLine(line []byte) (code int, last, ok bool) {
	if len(line) < 3 {
		return 0, false, false
	}
	for _, d := range line[:3] {
		if d < '0' || d > '9' {
			return 0, false, false
		}
		code = code*10 + int(d-'0')
	}
	if len(line) == 3 {
		return code, true, true
	}
	switch line[3] {
	case ' ':
		return code, true, true
	case '-':
		return code, false, true
	}
	return 0, false, false
}

// codeMatches applies textproto.Reader.ReadResponse's expectCode rule: 2
// matches 2xx, 25 matches 25x, 250 only 250.
func codeMatches(code, expect int) bool {
	switch {
	case expect < 10:
		return code/100 == expect
	case expect < 100:
		return code/10 == expect
	}
	return code == expect
}

// flush writes the buffered commands within timeout.
func (s *session) flush(timeout time.Duration) error {
	if err := s.nc.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	return s.bw.Flush()
}

// cmd sends the buffered command(s) and reads one reply.
func (s *session) cmd(expect int, timeout time.Duration) error {
	if err := s.flush(timeout); err != nil {
		return err
	}
	_, err := s.reply(expect, timeout, false)
	return err
}

// reset aborts the open transaction (RSET, RFC 5321 4.1.1.5).
func (s *session) reset(timeout time.Duration) error {
	s.bw.WriteString("RSET\r\n")
	return s.cmd(250, timeout)
}

// toSMTPError converts a reply the way go-smtp's client does: the
// enhanced status code (RFC 2034) is parsed from the text and removed from
// every line.
func toSMTPError(e *textproto.Error) *smtp.SMTPError {
	out := &smtp.SMTPError{Code: e.Code, Message: e.Msg}
	code, msg, ok := strings.Cut(e.Msg, " ")
	if !ok {
		return out
	}
	parts := strings.Split(code, ".")
	if len(parts) != 3 {
		return out
	}
	var ec smtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return out
		}
		ec[i] = n
	}
	out.EnhancedCode = ec
	out.Message = strings.ReplaceAll(msg, "\n"+code+" ", "\n")
	return out
}

// startTLS runs greeting, EHLO and STARTTLS (RFC 3207) on raw and returns
// the TLS connection, handshake done. raw's deadline bounds it all.
func startTLS(raw net.Conn, localName string, config *tls.Config, timeout time.Duration) (*tls.Conn, error) {
	if err := raw.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("set deadline: %w", err)
	}
	// Nothing arrives after the 220 to STARTTLS before the client's TLS
	// hello, so this reader buffers nothing the TLS conn would miss.
	tp := textproto.NewConn(raw)
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if err := tp.PrintfLine("EHLO %s", localName); err != nil {
		return nil, err
	}
	_, msg, err := tp.ReadResponse(250)
	if err != nil {
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	offered := false
	for i, l := range strings.Split(msg, "\n") {
		kw, _, _ := strings.Cut(l, " ")
		if i > 0 && strings.EqualFold(kw, "STARTTLS") {
			offered = true
		}
	}
	if !offered {
		return nil, errors.New("upstream does not offer STARTTLS")
	}
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		return nil, err
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, fmt.Errorf("STARTTLS: %w", err)
	}
	tc := tls.Client(raw, config)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("set deadline: %w", err)
	}
	return tc, nil
}

// greetedConn hands go-smtp's client, started after STARTTLS, the
// greeting it reads first (RFC 3207 4.2: the session restarts without
// one; the client then sends EHLO, as the RFC requires).
type greetedConn struct {
	net.Conn
	pending []byte
}

func (g *greetedConn) Read(b []byte) (int, error) {
	if len(g.pending) > 0 {
		n := copy(b, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(b)
}
