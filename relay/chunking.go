package relay

import (
	"errors"
	"fmt"
	"net"

	"github.com/emersion/go-smtp"
)

// maxChunked is the largest message sent with BDAT in the envelope's
// write. Beyond it the round trip saved is small next to the transfer,
// and an envelope refused after the content went out would have cost the
// whole transfer for nothing.
const maxChunked = 256 << 10

// chunked reports whether m goes out with BDAT (RFC 3030) in the write
// that carries its envelope, one write and one wait per message instead of
// two of each with DATA. That needs an upstream offering CHUNKING and
// PIPELINING (RFC 3030 4.2 lets BDAT be pipelined), at most maxChunked
// octets, and one recipient:
// a refused recipient then fails the whole transaction, as all or nothing
// requires, while with several, one refused after the content went out
// would leave the message delivered to the others. A pooled connection
// must also still be open, checked without blocking: the content then
// leaves in the first write, so a stale connection discovered afterwards
// could not be retried; one found closed (or with anything unasked for
// waiting, such as a 421) takes the DATA way, where it is retried.
func (c *conn) chunked(m *Message, reused bool) bool {
	if !c.chunking || !c.pipelining || len(m.To) != 1 || m.Size() > maxChunked {
		return false
	}
	return !reused || c.idle.isOpen()
}

// transactBDAT sends MAIL, RCPT, BDAT LAST and the content in one write
// and reads the three replies. The content goes as it is (BDAT takes no
// dot-stuffing) with its last line completed as DATA's would be, so the
// upstream receives the same octets either way. A refusal reports
// sent=false: the upstream took nothing (a BDAT refused is discarded),
// and the RSET that follows leaves the session clean.
func (u *Upstream) transactBDAT(c *conn, m *Message, utf8 bool, debug bool) (sent bool, resp string, err error) {
	size := m.Size()
	tail := lineEnd(m.Data)
	c.writeMail(m.From, size, utf8)
	c.writeRcpt(m.To[0])
	c.writeBDAT(size + int64(len(tail)))
	for _, b := range m.Data {
		c.bw.Write(b)
	}
	c.bw.WriteString(tail)
	if err := c.flush(u.cfg.DataTimeout); err != nil {
		return true, "", fmt.Errorf("writing content: %w", err)
	}
	// The upstream may hold every reply until the chunk is processed.
	var refusal error
	for _, step := range []struct {
		verb   string
		expect int
	}{{"MAIL", 250}, {"RCPT", 25}, {"BDAT", 250}} {
		r, err := c.reply(step.expect, u.cfg.DataTimeout, debug && step.verb == "BDAT")
		if err == nil {
			resp = r
			continue
		}
		err = fmt.Errorf("%s: %w", step.verb, err)
		var reply *smtp.SMTPError
		if !errors.As(err, &reply) || reply.Code == 421 {
			return true, "", err // the session is over
		}
		if refusal == nil {
			refusal = err
		}
		if step.verb != "BDAT" {
			continue
		}
		return false, "", refusal
	}
	if refusal != nil {
		// BDAT accepted although MAIL or the RCPT was refused: the
		// upstream may hold the message; never reuse such a session.
		c.broken = true
		return true, "", refusal
	}
	return true, resp, nil
}

// lineEnd is what completes the content's last line, as dotWriter.close
// does: nothing after a line end, "\n" after a '\r', "\r\n" otherwise
// (an empty message is one empty line).
func lineEnd(data net.Buffers) string {
	for i := len(data) - 1; i >= 0; i-- {
		b := data[i]
		if len(b) == 0 {
			continue
		}
		switch b[len(b)-1] {
		case '\n':
			return ""
		case '\r':
			return "\n"
		}
		return "\r\n"
	}
	return "\r\n"
}
