// Package relay hands accepted mail to the next hop: an upstream MTA over
// SMTP (RFC 5321), optionally protected by STARTTLS (RFC 3207) or implicit
// TLS (RFC 8314), authenticated with AUTH PLAIN (RFC 4954, RFC 4616) and
// pipelined (RFC 2920) where the upstream offers it, or,
// without an upstream, a directory of .eml files (the outbox).
//
// # Verdicts
//
// Send is synchronous: a nil error means the next hop has the message (the
// upstream answered 250 to the final dot, or the outbox file is durable on
// disk). Every error returned is a bare *smtp.SMTPError, never wrapped, so a
// go-smtp session can return it to its client unchanged:
//
//   - the upstream's own 4xx/5xx reply (code, enhanced code and text) to
//     MAIL, RCPT, DATA or the final dot;
//   - 451 4.4.1 when the upstream cannot be used: dial, TLS, AUTH failures,
//     timeouts, a connection dropped at any point, a 421 reply (the upstream
//     closing the channel is a transient unavailability, not a verdict on
//     the message);
//   - 451 4.3.0 when the outbox cannot be written.
//
// The underlying cause of a 451 is logged once here, with the message ID,
// because the returned reply cannot carry it.
//
// # All or nothing
//
// If the upstream refuses any recipient, the transaction is aborted with
// RSET and that refusal is returned for the whole message: nothing is
// half-delivered and the client retries (or bounces) the message as a unit.
// RFC 5321 allows partial acceptance, but the submission client only gets
// one reply to DATA, so a per-recipient verdict cannot be passed on.
//
// When the upstream offers PIPELINING (RFC 2920), MAIL, the RCPTs and DATA
// are sent in one write and their replies read in order; the first refusal
// is the one returned, as without pipelining. If DATA was then answered
// 354 (another recipient was accepted), the transaction cannot be aborted
// without delivering to that recipient, so the connection is closed
// instead of reset. The content is dot-stuffed in bulk (RFC 5321 4.5.2),
// byte for byte as net/textproto's DotWriter does it.
//
// When the upstream offers CHUNKING (RFC 3030) as well and the message has
// one recipient and at most 256 KiB, MAIL, RCPT, BDAT LAST and the content
// go out in one write and the three replies are read after it (RFC 3030
// 4.2 lets BDAT be pipelined): one round trip per message instead of two.
// The content is then sent as it is, its last line completed as DATA
// would, so the upstream receives the same octets. With several
// recipients DATA stays: one recipient refused after the content went out
// would leave the message delivered to the others. Larger messages keep
// DATA too, so that a refused envelope never costs their transfer.
//
// # Connection pool
//
// Upstream keeps up to MaxIdle authenticated connections open between
// messages (RFC 5321 3.3: a client may run several transactions on one
// session; no RSET is needed after a completed one). A pooled connection
// the upstream has meanwhile closed is detected when the first command fails
// without a reply (or with 421); the message is then retried once on a
// fresh connection. A retry only happens when the failure came before the
// message content was sent, so the upstream can never receive a message
// twice because of the pool. As BDAT sends the content in the first
// write, a pooled connection is first checked with a non-blocking peek at
// its socket: one found closed, or with an unasked reply (421) waiting,
// takes the DATA way, where it is retried; one the upstream closes between
// that check and the write answers 451 4.4.1. A failure after the content
// started (including a lost reply to the final dot) answers 451 4.4.1: the
// upstream may or may not have the message, and a client retry may then
// duplicate it; that is inherent to SMTP (RFC 1047) and the lesser harm
// than a loss.
//
// # Outbox format
//
// Outbox writes one file per message, DIR/<ID>.eml, containing two kinds of
// envelope header lines at the top, then the message exactly as the upstream
// would get it (CRLF line endings, not dot-stuffed):
//
//	X-Sendergate-Envelope-From: <bounce+id@rp.example.com>
//	X-Sendergate-Envelope-To: <a@example.net>
//	X-Sendergate-Envelope-To: <b@example.net>
//	DKIM-Signature: ...
//
// Headers were chosen over a JSON sidecar so that envelope and message are
// one file published by one rename: a crash can never leave one without the
// other. Headers added above a DKIM-Signature do not invalidate it; a tool
// that re-injects the file strips the X-Sendergate-Envelope-* lines (every
// line before the first one without that prefix) and uses them as the
// envelope. The null reverse-path is written as "<>".
//
// Files are written to a temporary name ".ID.*.tmp" in the same directory,
// fsynced, closed, renamed to ID.eml, and the directory is fsynced, so a
// *.eml file is always complete. Leftover .tmp files after a crash are never
// matched by "*.eml" and may be deleted.
package relay

import (
	"context"
	"net"
	"strings"

	"github.com/emersion/go-smtp"
)

// Message is one accepted message ready for hand-off.
type Message struct {
	// ID is the transaction id, used in logs and as the outbox file name.
	ID string
	// From is the envelope sender (already rewritten by the caller); empty
	// for the null reverse-path.
	From string
	// To lists the envelope recipients; at least one.
	To []string
	// Data is the message in order (for example the DKIM-Signature header,
	// the other headers, the body), with CRLF line endings, not dot-stuffed.
	// Send never modifies it.
	Data net.Buffers
}

// Size returns the length of the message content in bytes.
func (m *Message) Size() int64 {
	var n int64
	for _, b := range m.Data {
		n += int64(len(b))
	}
	return n
}

// Sender hands a message to the next hop. Upstream and Outbox implement it;
// smtpd and the confirmation mailer use it. Errors are bare *smtp.SMTPError
// values.
type Sender interface {
	Send(ctx context.Context, m *Message) error
}

var (
	_ Sender = (*Upstream)(nil)
	_ Sender = (*Outbox)(nil)
)

// errUnreachable is the reply when the upstream cannot take the message
// now (RFC 3463 4.4.1: no answer from host).
func errUnreachable() *smtp.SMTPError {
	return &smtp.SMTPError{
		Code:         451,
		EnhancedCode: smtp.EnhancedCode{4, 4, 1},
		Message:      "upstream unreachable, try again later",
	}
}

// errLocal is the reply when the outbox cannot be written (RFC 3463 4.3.0:
// other or undefined mail system status).
func errLocal() *smtp.SMTPError {
	return &smtp.SMTPError{
		Code:         451,
		EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message:      "local error writing the message, try again later",
	}
}

// errBadEnvelope is the reply to an envelope that cannot be put on the
// wire: no recipient, or an address with CR or LF (a caller bug).
func errBadEnvelope(why string) *smtp.SMTPError {
	return &smtp.SMTPError{
		Code:         554,
		EnhancedCode: smtp.EnhancedCode{5, 5, 4},
		Message:      "invalid envelope: " + why,
	}
}

// checkEnvelope refuses envelopes that would break the command syntax.
func checkEnvelope(m *Message) *smtp.SMTPError {
	if len(m.To) == 0 {
		return errBadEnvelope("no recipients")
	}
	if strings.ContainsAny(m.From, "\r\n<>") {
		return errBadEnvelope("bad sender address")
	}
	for _, to := range m.To {
		if to == "" || strings.ContainsAny(to, "\r\n<>") {
			return errBadEnvelope("bad recipient address")
		}
	}
	return nil
}
