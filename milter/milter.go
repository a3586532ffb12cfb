// Package milter holds sendergate's two gates for an existing MTA, both
// asking the same policy as the submission server:
//
//   - a milter (the Sendmail mail filter protocol, version 2 as spoken by
//     github.com/emersion/go-milter; Postfix's milter_protocol = 6 talks to
//     it) that, for mail authenticated by the MTA (the {auth_authen} macro),
//     checks the RFC 5322 From and Sender mailboxes at end of message,
//     refuses with 550 5.7.1, or inserts an RFC 6376 DKIM-Signature and
//     changes the RFC 5321 envelope sender to the bounce address;
//   - a Postfix policy delegation server (SMTPD_POLICY_README: name=value
//     attribute lines ended by an empty line) that checks the envelope
//     sender against sasl_username at RCPT time.
package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"sync"
	"time"

	gomilter "github.com/emersion/go-milter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/gate"
	"github.com/sendergate/sendergate/msg"
	"github.com/sendergate/sendergate/policy"
)

// Stage is the message stage both gates ask; *gate.Gate implements it.
type Stage interface {
	// Relay decides on a message the MTA relays and, when it may go,
	// signs it and names its new envelope sender.
	Relay(ctx context.Context, env *gate.Envelope, h *msg.Header, body []byte) (*gate.Result, *gate.Refusal)
	// Sender decides an envelope sender alone (the policy service).
	Sender(username, sender string) (*policy.Decision, *gate.Refusal)
	// Recipients admits recipients under the sending limits at RCPT;
	// Release gives them back when the message is not accepted.
	Recipients(ctx context.Context, env *gate.Envelope, n int) (gate.Hold, *gate.Refusal)
	Release(h gate.Hold)
	// Suppressed refuses a recipient on the organization's suppression
	// list without counting it (Recipients checks it too).
	Suppressed(env *gate.Envelope) *gate.Refusal
}

var _ Stage = (*gate.Gate)(nil)

// Defaults of MilterConfig and PolicydConfig.
const (
	DefaultMaxMessageBytes = 25 << 20
	// DefaultIdleTimeout outlasts Postfix's smtpd_timeout (300s), during
	// which a milter connection legitimately waits for the SMTP client, and
	// the policy client's max_idle (300s).
	DefaultIdleTimeout  = 10 * time.Minute
	DefaultWriteTimeout = time.Minute
)

// MilterConfig configures the milter gate.
type MilterConfig struct {
	// Unauthenticated is "accept" (mail without {auth_authen} passes
	// untouched) or "reject" (550 5.7.1 at MAIL). Any other value rejects:
	// the gate fails closed.
	Unauthenticated string
	// MaxMessageBytes bounds the header and body kept for signing; larger
	// messages get 552 5.3.4. Zero means DefaultMaxMessageBytes.
	MaxMessageBytes int64
	// IdleTimeout closes a connection whose MTA sends nothing for this
	// long; WriteTimeout bounds each write. Zero means the defaults.
	IdleTimeout, WriteTimeout time.Duration
	// Logger gets one line per message; nil discards.
	Logger *slog.Logger
	// Registerer, when set, receives the sendergate_milter_* metrics.
	Registerer prometheus.Registerer
}

// MilterServer is the milter gate. Create it with NewMilter.
type MilterServer struct {
	cfg     MilterConfig
	stage   Stage
	log     *slog.Logger
	metrics *milterMetrics
	srv     *gomilter.Server

	mu sync.Mutex
	ln *deadlineListener
}

// NewMilter returns a milter gate deciding with stage.
func NewMilter(cfg MilterConfig, stage Stage) *MilterServer {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	s := &MilterServer{cfg: cfg, stage: stage, log: cfg.Logger, metrics: newMilterMetrics(cfg.Registerer)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.srv = &gomilter.Server{
		NewMilter: func() gomilter.Milter { return &filter{s: s} },
		Actions:   gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptChangeFrom,
		Protocol:  gomilter.OptNoConnect | gomilter.OptNoHelo,
	}
	return s
}

// Serve accepts MTA connections on l until Close; it returns nil after Close.
func (s *MilterServer) Serve(l net.Listener) error {
	dl := newDeadlineListener(l, s.cfg.IdleTimeout, s.cfg.WriteTimeout)
	s.mu.Lock()
	s.ln = dl
	s.mu.Unlock()
	err := s.srv.Serve(dl)
	if errors.Is(err, gomilter.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return fmt.Errorf("milter: serve: %w", err)
}

// Close stops accepting and closes every open MTA connection; Postfix then
// applies milter_default_action (tempfail) to messages in flight.
func (s *MilterServer) Close() error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return nil
	}
	return ln.closeAll()
}

// reply is an SMTP reply the MTA gives its client (SMFIR_REPLYCODE).
func reply(code int, enhanced, text string) gomilter.Response {
	return gomilter.NewResponseStr(byte(gomilter.ActReplyCode), fmt.Sprintf("%d %s %s", code, enhanced, sanitize(text)))
}

// filter is the per-message state. go-milter makes a new one after every
// reply that ends a message (accept, reject, tempfail) but keeps it across
// SMFIR_REPLYCODE and Abort, so MailFrom and Abort reset it.
type filter struct {
	s       *MilterServer
	user    string // {auth_authen}, taken at MAIL: later macro packets replace the map
	queueID string
	from    string
	rcpts   []string  // each counts against the sandbox limit
	hold    gate.Hold // the recipients' place under the sending limits
	fields  []msg.Field
	size    int64
	body    []byte
	start   time.Time
	refuse  gomilter.Response // a refusal decided before end of message
}

var _ gomilter.Milter = (*filter)(nil)

// reset starts over; recipients of a message that did not end in an
// accept are given back to the sending limits.
func (f *filter) reset() {
	f.s.stage.Release(f.hold)
	*f = filter{s: f.s}
}

func (f *filter) Connect(string, string, uint16, net.IP, *gomilter.Modifier) (gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (f *filter) Helo(string, *gomilter.Modifier) (gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

// MailFrom starts a message: the account is the {auth_authen} macro sent
// with MAIL (RFC 4954 authorization identity as Postfix knows it).
func (f *filter) MailFrom(from string, m *gomilter.Modifier) (gomilter.Response, error) {
	f.reset()
	f.start = time.Now()
	f.from = from
	f.user = m.Macros["{auth_authen}"]
	f.queueID = m.Macros["i"]
	if f.user != "" {
		return gomilter.RespContinue, nil
	}
	if f.s.cfg.Unauthenticated == "accept" || f.s.cfg.Unauthenticated == "" {
		f.s.done(f, "unauthenticated", "accepted untouched", "", "")
		return gomilter.RespAccept, nil
	}
	f.s.done(f, "rejected", "authentication required", "", "")
	return reply(550, "5.7.1", "authentication required"), nil
}

// RcptTo admits each recipient of authenticated mail under the sending
// limits (past one, the MTA answers that RCPT 451 4.7.0; the recipients
// before it stay accepted) and keeps the recipients, up to maxRecipients
// (Postfix enforces its own smtpd_recipient_limit; this only bounds the
// memory).
func (f *filter) RcptTo(rcpt string, _ *gomilter.Modifier) (gomilter.Response, error) {
	if f.user != "" {
		h, ref := f.s.stage.Recipients(context.Background(), &gate.Envelope{Username: f.user, Rcpts: []string{rcpt}}, 1)
		if ref != nil {
			f.s.log.Info("milter recipient deferred", "queue_id", f.queueID, "account", f.user, "reason", ref.Reason, "reply", ref.Error())
			return reply(ref.Code, enhanced(ref.Enhanced), ref.Text), nil
		}
		f.hold.Add(h)
	}
	if len(f.rcpts) < maxRecipients {
		f.rcpts = append(f.rcpts, rcpt)
	}
	return gomilter.RespContinue, nil
}

// Header keeps the fields in arrival order, rebuilt as raw lines.
func (f *filter) Header(name, value string, _ *gomilter.Modifier) (gomilter.Response, error) {
	if f.refuse != nil {
		return gomilter.RespContinue, nil
	}
	if len(f.fields) >= maxHeaderFields {
		f.s.done(f, "rejected", "too many header fields", "header", "")
		f.refuse = reply(550, "5.6.0", fmt.Sprintf("message has more than %d header fields", maxHeaderFields))
		return gomilter.RespContinue, nil
	}
	field, err := fieldFromMilter(name, value)
	if err != nil {
		f.s.done(f, "rejected", err.Error(), "header", "")
		f.refuse = replyFor(err)
		return gomilter.RespContinue, nil
	}
	f.fields = append(f.fields, field)
	return f.grow(len(field.Raw)), nil
}

func (f *filter) Headers(textproto.MIMEHeader, *gomilter.Modifier) (gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (f *filter) BodyChunk(chunk []byte, _ *gomilter.Modifier) (gomilter.Response, error) {
	if f.refuse != nil {
		return gomilter.RespContinue, nil
	}
	if r := f.grow(len(chunk)); r != gomilter.RespContinue {
		return r, nil
	}
	f.body = append(f.body, chunk...)
	return gomilter.RespContinue, nil
}

// grow accounts n more octets and refuses the message past the limit.
func (f *filter) grow(n int) gomilter.Response {
	f.size += int64(n)
	if f.size <= f.s.cfg.MaxMessageBytes {
		return gomilter.RespContinue
	}
	f.s.done(f, "rejected", "message too large", "size", "")
	f.body, f.fields = nil, nil
	f.refuse = reply(552, "5.3.4", fmt.Sprintf("message exceeds %d octets", f.s.cfg.MaxMessageBytes))
	return f.refuse
}

// Body is the end of the message: decide, then sign and rewrite or refuse.
func (f *filter) Body(m *gomilter.Modifier) (gomilter.Response, error) {
	if f.refuse != nil {
		f.s.stage.Release(f.hold)
		f.hold = gate.Hold{}
		return f.refuse, nil
	}
	resp, err := f.s.decide(f, m)
	if err != nil {
		// The modifications may be half sent; the connection is closed and
		// Postfix applies milter_default_action.
		return nil, err
	}
	return resp, nil
}

func (f *filter) Abort(*gomilter.Modifier) error {
	f.reset()
	return nil
}

// decide runs the gate on the collected message and answers the MTA.
func (s *MilterServer) decide(f *filter, m *gomilter.Modifier) (gomilter.Response, error) {
	env := &gate.Envelope{Username: f.user, Rcpts: f.rcpts}
	res, ref := s.stage.Relay(context.Background(), env, &msg.Header{Fields: f.fields}, f.body)
	// Accepted, the recipients stay counted; refused, they are given back.
	hold := f.hold
	f.hold = gate.Hold{}
	if ref != nil {
		s.stage.Release(hold)
		if ref.Err != nil {
			s.log.Error("milter: internal error", "queue_id", f.queueID, "err", ref.Err)
		}
		s.done(f, result(ref), ref.Text, ref.Reason, ref.FromDomain)
		return reply(ref.Code, enhanced(ref.Enhanced), ref.Text), nil
	}
	if err := m.InsertHeader(0, "DKIM-Signature", res.SignatureValue()); err != nil {
		return nil, fmt.Errorf("milter: insert DKIM-Signature: %w", err)
	}
	// RFC 5321 4.1.1.2: the new reverse-path, in angle brackets as
	// Sendmail's smfi_chgfrom takes it.
	if err := m.ChangeFrom("<" + res.EnvelopeFrom + ">"); err != nil {
		return nil, fmt.Errorf("milter: change envelope sender: %w", err)
	}
	s.done(f, "accepted", "signed as "+res.FromDomain+", id "+res.ID, string(res.Decision.Reason), res.FromDomain)
	return gomilter.RespAccept, nil
}

// replyFor turns a *msg.Error into its SMTP reply; anything else is 451.
func replyFor(err error) gomilter.Response {
	var me *msg.Error
	if errors.As(err, &me) {
		return reply(me.Code, enhanced(me.Enhanced), me.Message)
	}
	return reply(451, "4.3.0", "internal error, try again later")
}

func enhanced(e [3]int) string { return fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2]) }

// result is the log and metric label of a refusal.
func result(r *gate.Refusal) string {
	if r.Temporary() {
		return "tempfailed"
	}
	return "rejected"
}

// done logs the outcome of one message and counts it.
func (s *MilterServer) done(f *filter, result, detail, reason, domain string) {
	s.metrics.messages.WithLabelValues(result).Inc()
	attrs := []any{"queue_id", f.queueID, "account", f.user, "envelope_from", f.from,
		"result", result, "detail", detail, "took", time.Since(f.start)}
	if reason != "" {
		attrs = append(attrs, "domain", domain, "reason", reason)
	}
	s.log.Info("milter message", attrs...)
}
