package smtpd

import (
	"context"
	"net"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/gate"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/relay"
)

// Stage is the message stage the server hands each received message to;
// *gate.Gate implements it.
type Stage interface {
	Submit(ctx context.Context, env *gate.Envelope, data []byte) (*gate.Result, *gate.Refusal)
	// Recipients admits recipients under the sending limits at RCPT;
	// Release gives them back when the transaction does not complete.
	Recipients(ctx context.Context, env *gate.Envelope, n int) (gate.Hold, *gate.Refusal)
	Release(h gate.Hold)
}

var _ Stage = (*gate.Gate)(nil)

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

// outcome is what the stage decided about a submission.
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

// pipeline adapts the gate to the session: submission in, relay message
// or reply out. It holds no rule of its own.
type pipeline struct{ stage Stage }

// process runs the stage on sub. The returned Message shares sub.Data's
// memory (the body is not copied).
func (p *pipeline) process(ctx context.Context, sub *submission) outcome {
	env := &gate.Envelope{ID: sub.ID, Helo: sub.Helo, RemoteIP: sub.RemoteIP, TLS: sub.TLS, Rcpts: sub.Rcpts, Time: sub.Time}
	if sub.Account != nil {
		env.Username, env.AccountID = sub.Account.Username, sub.Account.ID
	}
	res, ref := p.stage.Submit(ctx, env, sub.Data)
	if ref != nil {
		return outcome{Reply: reply(ref), Err: ref.Err, Decision: ref.Decision, FromDomain: ref.FromDomain}
	}
	return outcome{
		Message: &relay.Message{
			ID:   res.ID,
			From: res.EnvelopeFrom,
			To:   sub.Rcpts,
			Data: net.Buffers{[]byte(res.Signature), res.Header, res.Body},
		},
		Decision: res.Decision, FromDomain: res.FromDomain, Sign: res.Sign,
	}
}

// reply is the client's reply for a gate refusal.
func reply(r *gate.Refusal) *smtp.SMTPError {
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCode(r.Enhanced), Message: r.Text}
}
