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
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"time"

	gomilter "github.com/emersion/go-milter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/msg"
	"github.com/sendergate/sendergate/policy"
)

// Policy is the authorization both gates ask; *policy.Engine satisfies it.
type Policy interface {
	// Current returns the snapshot decisions come from, or
	// policy.ErrNotReady before the first load.
	Current() (*policy.Snapshot, error)
	// Admit is the per-message decision (it counts sandbox mail).
	Admit(ctx context.Context, a *policy.Account, mailboxes ...string) policy.Decision
}

var _ Policy = (*policy.Engine)(nil)

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
	pol     Policy
	log     *slog.Logger
	metrics *milterMetrics
	srv     *gomilter.Server

	mu sync.Mutex
	ln *deadlineListener
}

// NewMilter returns a milter gate deciding with pol.
func NewMilter(cfg MilterConfig, pol Policy) *MilterServer {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	s := &MilterServer{cfg: cfg, pol: pol, log: cfg.Logger, metrics: newMilterMetrics(cfg.Registerer)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.srv = &gomilter.Server{
		NewMilter: func() gomilter.Milter { return &filter{s: s} },
		Actions:   gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptChangeFrom,
		Protocol:  gomilter.OptNoConnect | gomilter.OptNoHelo | gomilter.OptNoRcptTo,
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
	fields  []msg.Field
	size    int64
	body    []byte
	start   time.Time
	refuse  gomilter.Response // a refusal decided before end of message
}

var _ gomilter.Milter = (*filter)(nil)

func (f *filter) reset() {
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
		f.s.done(f, "unauthenticated", "accepted untouched", nil)
		return gomilter.RespAccept, nil
	}
	f.s.done(f, "rejected", "authentication required", nil)
	return reply(550, "5.7.1", "authentication required"), nil
}

func (f *filter) RcptTo(string, *gomilter.Modifier) (gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

// Header keeps the fields in arrival order, rebuilt as raw lines.
func (f *filter) Header(name, value string, _ *gomilter.Modifier) (gomilter.Response, error) {
	if f.refuse != nil {
		return gomilter.RespContinue, nil
	}
	if len(f.fields) >= maxHeaderFields {
		f.s.done(f, "rejected", "too many header fields", nil)
		f.refuse = reply(550, "5.6.0", fmt.Sprintf("message has more than %d header fields", maxHeaderFields))
		return gomilter.RespContinue, nil
	}
	field, err := fieldFromMilter(name, value)
	if err != nil {
		f.s.done(f, "rejected", err.Error(), nil)
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
	f.s.done(f, "rejected", "message too large", nil)
	f.body, f.fields = nil, nil
	f.refuse = reply(552, "5.3.4", fmt.Sprintf("message exceeds %d octets", f.s.cfg.MaxMessageBytes))
	return f.refuse
}

// Body is the end of the message: decide, then sign and rewrite or refuse.
func (f *filter) Body(m *gomilter.Modifier) (gomilter.Response, error) {
	if f.refuse != nil {
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

// decide runs the policy on the collected message and answers the MTA.
func (s *MilterServer) decide(f *filter, m *gomilter.Modifier) (gomilter.Response, error) {
	h := &msg.Header{Fields: f.fields}
	mailboxes, err := authors(h)
	if err != nil {
		s.done(f, "rejected", err.Error(), nil)
		return replyFor(err), nil
	}
	snap, err := s.pol.Current()
	if err != nil {
		s.done(f, "tempfailed", "policy not loaded", nil)
		return reply(451, "4.3.0", policy.Decision{Reason: policy.NotReady}.Message()), nil
	}
	acct, ok := snap.Account(f.user)
	if !ok {
		s.done(f, "rejected", "unknown account", nil)
		return reply(550, "5.7.1", fmt.Sprintf("SMTP account %q is not known to sendergate", f.user)), nil
	}
	d := s.pol.Admit(context.Background(), acct, mailboxes...)
	if !d.Allowed {
		s.done(f, decisionResult(d), d.Message(), &d)
		return decisionReply(d), nil
	}
	id := newID()
	sig, err := s.sign(h, f.body, d.Domain)
	if err != nil {
		s.log.Error("milter: signing failed", "queue_id", f.queueID, "domain", d.DomainName, "err", err)
		s.done(f, "tempfailed", "signing failed", &d)
		return reply(451, "4.3.0", "internal error while signing, try again later"), nil
	}
	if err := m.InsertHeader(0, "DKIM-Signature", sig); err != nil {
		return nil, fmt.Errorf("milter: insert DKIM-Signature: %w", err)
	}
	// RFC 5321 4.1.1.2: the new reverse-path, in angle brackets as
	// Sendmail's smfi_chgfrom takes it.
	if err := m.ChangeFrom("<bounce+" + id + "@" + d.Domain.BounceDomain + ">"); err != nil {
		return nil, fmt.Errorf("milter: change envelope sender: %w", err)
	}
	s.done(f, "accepted", "signed as "+d.DomainName+", id "+id, &d)
	return gomilter.RespAccept, nil
}

// authors returns the normalized From mailboxes followed by the Sender
// mailbox, so that the decision's domain (the first one) is the From
// domain the signature's d= must name.
func authors(h *msg.Header) ([]string, error) {
	from, sender, err := msg.Authors(h)
	if err != nil {
		return nil, err
	}
	if sender != "" {
		from = append(from, sender)
	}
	out := make([]string, 0, len(from))
	for _, a := range from {
		n, _, err := msg.NormalizeAddress(a)
		if err != nil {
			return nil, &msg.Error{Code: 550, Enhanced: [3]int{5, 7, 1},
				Message: fmt.Sprintf("author address %q cannot be authorized: it has no valid domain", a)}
		}
		out = append(out, n)
	}
	return out, nil
}

// sign returns the DKIM-Signature value (without the name, the colon and
// the final CRLF) over the header fields and body as the MTA will send them.
func (s *MilterServer) sign(h *msg.Header, body []byte, d *policy.Domain) (string, error) {
	var buf bytes.Buffer
	buf.Grow(len(body) + 4096)
	if _, err := h.WriteTo(&buf); err != nil {
		return "", err
	}
	b := appendCRLF(buf.Bytes(), body)
	field, err := dkim.Sign(bytes.NewReader(b), d.Name, d.Selector, d.Key)
	if err != nil {
		return "", err
	}
	_, value, _ := strings.Cut(field, ":")
	return strings.TrimSuffix(strings.TrimLeft(value, " "), "\r\n"), nil
}

// replyFor turns a *msg.Error into its SMTP reply; anything else is 451.
func replyFor(err error) gomilter.Response {
	var me *msg.Error
	if errors.As(err, &me) {
		return reply(me.Code, fmt.Sprintf("%d.%d.%d", me.Enhanced[0], me.Enhanced[1], me.Enhanced[2]), me.Message)
	}
	return reply(451, "4.3.0", "internal error, try again later")
}

// decisionReply maps a refusal to its reply: 451 4.7.1 for the sandbox
// limit, 451 4.3.0 for other temporary refusals, 550 5.7.1 otherwise.
func decisionReply(d policy.Decision) gomilter.Response {
	switch {
	case d.Reason == policy.SandboxLimit:
		return reply(451, "4.7.1", d.Message())
	case d.Temporary:
		return reply(451, "4.3.0", d.Message())
	default:
		return reply(550, "5.7.1", d.Message())
	}
}

func decisionResult(d policy.Decision) string {
	if d.Temporary {
		return "tempfailed"
	}
	return "rejected"
}

// newID identifies one accepted message in the bounce address and the logs.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// done logs the outcome of one message and counts it.
func (s *MilterServer) done(f *filter, result, detail string, d *policy.Decision) {
	s.metrics.messages.WithLabelValues(result).Inc()
	attrs := []any{"queue_id", f.queueID, "account", f.user, "envelope_from", f.from,
		"result", result, "detail", detail, "took", time.Since(f.start)}
	if d != nil {
		attrs = append(attrs, "domain", d.DomainName, "reason", string(d.Reason))
	}
	s.log.Info("milter message", attrs...)
}
