package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/msg"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/relay"
)

// submission is one message at the end of DATA, with what the session
// knows about it.
type submission struct {
	ID       string // transaction id: logs, Received, envelope sender
	Account  *policy.Account
	Helo     string
	RemoteIP string
	TLS      bool
	Rcpts    []string
	Data     []byte // the message as received: header, empty line, body
	Time     time.Time
}

// outcome is what the pipeline decided about a submission.
type outcome struct {
	// Message is set when the message may be relayed.
	Message *relay.Message
	// Reply is set when the message is refused.
	Reply *smtp.SMTPError
	// Err is the internal error behind a 451 4.3.0 Reply, to be logged.
	Err error
	// Decision is the policy's answer (zero when a check before it failed).
	Decision policy.Decision
	// FromDomain is the normalised domain of the first From mailbox.
	FromDomain string
	// Sign is the time spent signing.
	Sign time.Duration
}

// pipeline is the per-transaction work between DATA and the relay: parse
// the header, check the authors against the policy, apply the submission
// rewrites, DKIM-sign and build the relay.Message. It touches no network.
type pipeline struct {
	hostname string
	pol      Policy
	now      func() time.Time
	// signing admits as many concurrent DKIM signatures as there are
	// CPUs: RSA signing is CPU-bound, so more at once only slows every one
	// of them down; waiting transactions are served in arrival order.
	signing chan struct{}
}

func newPipeline(hostname string, pol Policy, now func() time.Time) *pipeline {
	return &pipeline{hostname: hostname, pol: pol, now: now, signing: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

// process runs the pipeline on sub. The returned Message shares sub.Data's
// memory (the body is not copied).
func (p *pipeline) process(ctx context.Context, sub *submission) outcome {
	h, body, err := splitMessage(sub.Data)
	if err != nil {
		return refusal(err, sub.ID)
	}
	mailboxes, fromDomain, reply := authorMailboxes(h)
	if reply != nil {
		return outcome{Reply: reply}
	}
	// RFC 5322 3.6.2: every author identity must be the account's to use;
	// the first From mailbox's domain is the one to sign as (d=).
	dec := p.pol.Admit(ctx, sub.Account, mailboxes...)
	out := outcome{Decision: dec, FromDomain: fromDomain}
	if !dec.Allowed {
		out.Reply = decisionReply(dec)
		return out
	}
	proto := "ESMTPA"
	if sub.TLS {
		proto = "ESMTPSA" // RFC 3848
	}
	msg.Prepare(h, p.hostname, msg.TraceInfo{
		Helo: sub.Helo, RemoteIP: sub.RemoteIP, ID: sub.ID, Protocol: proto,
		Recipients: sub.Rcpts, Time: sub.Time,
	}, p.now())
	var hb bytes.Buffer
	hb.Grow(len(sub.Data) - len(body) + 1024)
	if _, err := h.WriteTo(&hb); err != nil {
		out.Reply, out.Err = errInternal(sub.ID), err
		return out
	}
	header := hb.Bytes()
	start := time.Now()
	// RFC 6376 5: d= is the From domain (never the envelope's), with the
	// domain's own selector and key.
	// *net.Buffers is an io.WriterTo: the signer gets both slices as they
	// are, with no intermediate copy.
	toSign := net.Buffers{header, body}
	select {
	case p.signing <- struct{}{}:
	case <-ctx.Done():
		out.Reply, out.Err = errInternal(sub.ID), ctx.Err()
		return out
	}
	sig, err := dkim.Sign(&toSign, dec.Domain.Name, dec.Domain.Selector, dec.Domain.Key)
	<-p.signing
	out.Sign = time.Since(start)
	if err != nil {
		out.Reply, out.Err = errInternal(sub.ID), fmt.Errorf("smtpd: sign as %s: %w", dec.Domain.Name, err)
		return out
	}
	out.Message = &relay.Message{
		ID:   sub.ID,
		From: "bounce+" + sub.ID + "@" + dec.Domain.BounceDomain,
		To:   sub.Rcpts,
		Data: net.Buffers{[]byte(sig), header, body},
	}
	return out
}

// refusal turns a header parsing error into an outcome: the msg package's
// own refusal (550 5.6.0, 552 5.3.4), or an internal error.
func refusal(err error, id string) outcome {
	if reply, ok := fromMsgError(err); ok {
		return outcome{Reply: reply}
	}
	return outcome{Reply: errInternal(id), Err: fmt.Errorf("smtpd: read header: %w", err)}
}

// splitMessage parses the header of data and returns it with the body,
// which is a sub-slice of data (with bare LF line endings turned into CRLF,
// which copies only when there are any).
func splitMessage(data []byte) (*msg.Header, []byte, error) {
	rd := bytes.NewReader(data)
	br := bufio.NewReader(rd)
	h, err := msg.ReadHeader(br)
	if err != nil {
		return nil, nil, err
	}
	off := len(data) - rd.Len() - br.Buffered()
	return h, toCRLF(data[off:]), nil
}

// authorMailboxes extracts and normalises every From and Sender mailbox
// (IDN to A-labels, lowercase domain, no trailing dot) and returns them,
// From first, with the first From mailbox's domain.
func authorMailboxes(h *msg.Header) ([]string, string, *smtp.SMTPError) {
	from, sender, err := msg.Authors(h)
	if err != nil {
		if reply, ok := fromMsgError(err); ok {
			return nil, "", reply
		}
		return nil, "", errBadAuthor(err.Error())
	}
	all := from
	if sender != "" {
		all = append(all, sender)
	}
	out := make([]string, len(all))
	var fromDomain string
	for i, a := range all {
		norm, domain, err := msg.NormalizeAddress(a)
		if err != nil {
			return nil, "", errBadAuthor(err.Error())
		}
		if i == 0 {
			fromDomain = domain
		}
		out[i] = norm
	}
	return out, fromDomain, nil
}

// decisionReply maps a refusal to its reply: 550 5.7.1 for a permanent
// one, 451 for a temporary one (4.7.1 for the sandbox limit, 4.3.0 else).
func decisionReply(d policy.Decision) *smtp.SMTPError {
	switch {
	case d.Reason == policy.SandboxLimit:
		return errSandboxLimit()
	case d.Reason == policy.NotReady:
		return errNotReady()
	case d.Temporary:
		return errDeferred(d.Message())
	default:
		return errRefused(d.Message())
	}
}

// toCRLF returns b with every bare LF turned into CRLF; b itself when it
// has none (the common case: SMTP clients send CRLF).
func toCRLF(b []byte) []byte {
	bare := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			bare++
		}
	}
	if bare == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+bare)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}
