// Package gate is sendergate's one message stage, between the policy and
// the protocol adapters. Given an envelope (the account's username, the
// client, the recipients), the RFC 5322 header and the body, it resolves
// the account on the snapshot it decides on, extracts and normalizes the
// author mailboxes (From, Sender), asks the policy, counts sandbox
// recipients, prepares the header of submitted mail (RFC 6409 8), signs
// under a shared admission (RFC 6376), builds the bounce address, and
// returns either a Result or a protocol-neutral Refusal.
//
// The submission server (smtpd) reads a message, calls Submit and relays
// the Result; the milter calls Relay and turns the Result into header and
// envelope modifications. Neither holds a policy rule, a reply text or an
// id scheme of its own: they are all here.
package gate

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/limits"
	"github.com/sendergate/sendergate/msg"
	"github.com/sendergate/sendergate/policy"
)

// Policy gives the snapshot a message is decided on and the key to sign
// with; *policy.Engine implements it.
type Policy interface {
	Current() (*policy.Snapshot, error)
	Signer(ctx context.Context, d *policy.Domain) (crypto.Signer, error)
}

var _ Policy = (*policy.Engine)(nil)

// Counter counts sandbox recipients per organization and UTC day, in one
// atomic step shared by every instance (the store implements it). It
// reports whether n more recipients fit under limit.
type Counter interface {
	IncrSandbox(ctx context.Context, orgID, day string, n, limit int) (bool, error)
}

// Options configure a Gate.
type Options struct {
	// Hostname is the "by" of the Received field and the Message-ID
	// domain of submitted mail.
	Hostname string
	// SandboxLimit is sandbox.daily_limit: recipients per organization
	// per UTC day; 0 refuses sandbox mail.
	SandboxLimit int
	// Signers bounds concurrent DKIM signatures; 0 means GOMAXPROCS. RSA
	// signing is CPU-bound: more at once only slows every one down, and
	// waiting messages are served in arrival order.
	Signers int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger gets internal errors; nil discards.
	Logger *slog.Logger
	// Registerer receives the gate's metrics; nil: none.
	Registerer prometheus.Registerer
	// Limiter enforces the sending limits at RCPT (Recipients); nil: no
	// limits. Limits are the config's defaults it resolves them with.
	Limiter Limiter
	Limits  limits.Defaults
	// Suppressions refuses suppressed recipients at RCPT (Recipients);
	// nil: suppression.enforce is off.
	Suppressions Suppressions
	// BounceIDs makes the ID of each bounce+ID@ envelope sender; nil:
	// the bare message id (tests that do not read bounces).
	BounceIDs BounceIDs
}

// BounceIDs encodes a message id as the unforgeable ID of its bounce
// address; *bounce.Codec implements it.
type BounceIDs interface {
	// EncodeFor makes the id of message msgID through return-path domain
	// domain; rcpt, when not "", binds the message's one recipient.
	EncodeFor(msgID, domain, rcpt string, now time.Time) (string, error)
}

// Gate is the message stage. It is safe for concurrent use; one Gate
// serves every adapter of a process, so they share the signing admission.
type Gate struct {
	pol     Policy
	counter Counter
	opts    Options
	signing chan struct{}
	log     *slog.Logger
	metrics *metrics
}

// New returns a gate deciding on pol's snapshots and counting sandbox
// recipients with counter.
func New(pol Policy, counter Counter, opts Options) *Gate {
	if opts.Signers <= 0 {
		opts.Signers = runtime.GOMAXPROCS(0)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Gate{pol: pol, counter: counter, opts: opts, signing: make(chan struct{}, opts.Signers), log: log,
		metrics: newMetrics(opts.Registerer)}
}

// Envelope is what the adapter knows about one message.
type Envelope struct {
	// ID identifies the message in logs, the Received field and the
	// bounce address; NewID makes one.
	ID string
	// Username is the SMTP account (the AUTH identity, or the MTA's
	// {auth_authen}); AccountID, when set, is the account id the session
	// authenticated, so that a deleted and re-created account of the same
	// name is not taken for the old one.
	Username  string
	AccountID string
	// Helo, RemoteIP and TLS describe the client for the Received field.
	Helo     string
	RemoteIP string
	TLS      bool
	// Rcpts are the envelope recipients; each counts against the sandbox
	// limit.
	Rcpts []string
	// Time is when the message was received; Now when zero.
	Time time.Time
}

// Result is an accepted message, ready to be handed on.
type Result struct {
	ID string
	// Signature is the complete "DKIM-Signature: ...\r\n" field to put at
	// the top of the header.
	Signature string
	// Header is the header block as it must be sent after Signature
	// (prepared for submitted mail; as received for relayed mail), with
	// the empty line that ends it; Body follows it.
	Header, Body []byte
	// EnvelopeFrom is the new reverse-path: bounce+ID@<bounce domain>.
	EnvelopeFrom string
	// Account is the account the message was decided for.
	Account *policy.Account
	// Decision is the policy's answer; FromDomain the d= of the signature.
	Decision   policy.Decision
	FromDomain string
	// Sign is the time spent signing, admission wait included.
	Sign time.Duration
}

// SignatureValue is the DKIM-Signature field's value alone, without the
// name, the colon and the final CRLF, as a milter inserts it.
func (r *Result) SignatureValue() string {
	_, v, _ := strings.Cut(r.Signature, ":")
	return strings.TrimSuffix(strings.TrimLeft(v, " "), "\r\n")
}

// Refusal is a message the gate does not accept: an SMTP reply (RFC 5321
// 4.2 code, RFC 3463 enhanced code, text) any adapter can give, plus what
// the log line needs.
type Refusal struct {
	Code     int
	Enhanced [3]int
	Text     string
	// Reason is the policy reason, or a short label for refusals before
	// the policy ("header", "account", "internal").
	Reason string
	// Decision is the policy's answer when it was asked.
	Decision policy.Decision
	// FromDomain is the first From mailbox's domain, when known.
	FromDomain string
	// Err is the internal cause behind a 451 4.3.0, to be logged once.
	Err error
}

// Error formats the refusal as an SMTP reply line.
func (r *Refusal) Error() string {
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text)
}

// Temporary reports whether the refusal is a 4xx.
func (r *Refusal) Temporary() bool { return r.Code/100 == 4 }

// Submit decides on a message received by the submission server: data is
// the whole message as received (header, empty line, body; bare LF line
// endings are turned into CRLF, a bare CR is refused). On success the
// header is prepared (Return-Path removed, Message-ID and Date added when
// missing, a Received field prepended) and signed. The Result's Body shares
// data's memory.
func (g *Gate) Submit(ctx context.Context, env *Envelope, data []byte) (*Result, *Refusal) {
	h, body, err := splitMessage(data)
	if err != nil {
		return nil, g.metrics.refused(fromError(err, env.ID, "header"))
	}
	res, ref := g.process(ctx, env, h, body, true)
	return res, g.metrics.refused(ref)
}

// Relay decides on a message an MTA hands to the milter: h holds the
// fields as the MTA will send them, body the body. Nothing is rewritten;
// the Result carries the signature and the new envelope sender.
func (g *Gate) Relay(ctx context.Context, env *Envelope, h *msg.Header, body []byte) (*Result, *Refusal) {
	res, ref := g.process(ctx, env, h, toCRLF(body), false)
	return res, g.metrics.refused(ref)
}

// Sender decides the envelope sender alone, for the Postfix policy
// service at RCPT: the same account resolution and decision, without a
// message, counting or signing. A nil Refusal means the sender may be used.
func (g *Gate) Sender(username, sender string) (*policy.Decision, *Refusal) {
	d, ref := g.sender(username, sender)
	return d, g.metrics.refused(ref)
}

func (g *Gate) sender(username, sender string) (*policy.Decision, *Refusal) {
	snap, acct, ref := g.account(username, "")
	if ref != nil {
		return nil, ref
	}
	if sender == "" {
		// The null sender names no domain to authorize; refusing it keeps
		// the gate closed (docs/postfix.md).
		return nil, &Refusal{Code: 550, Enhanced: [3]int{5, 7, 1}, Reason: "null_sender",
			Text: "the null sender <> is not allowed for authenticated mail; use an address of your domain"}
	}
	norm, _, err := msg.NormalizeAddress(sender)
	if err != nil {
		return nil, badAuthor("sender", sender)
	}
	d := snap.Decide(acct, norm)
	if !d.Allowed {
		return &d, decisionRefusal(d, "")
	}
	return &d, nil
}

func (g *Gate) process(ctx context.Context, env *Envelope, h *msg.Header, body []byte, submit bool) (*Result, *Refusal) {
	if env.ID == "" {
		env.ID = NewID()
	}
	// RFC 5322 2.3, 2.1.1: no bare CR (SMTP smuggling), no line over 998
	// octets (a hop that folds it breaks the signature).
	if err := msg.CheckBody(body); err != nil {
		return nil, fromError(err, env.ID, "body")
	}
	snap, acct, ref := g.account(env.Username, env.AccountID)
	if ref != nil {
		return nil, ref
	}
	mailboxes, fromDomain, ref := authors(h)
	if ref != nil {
		return nil, ref
	}
	// RFC 5322 3.6.2: every author identity must be the account's to use;
	// the first From mailbox's domain is the one to sign as (d=).
	d := snap.Decide(acct, mailboxes...)
	if !d.Allowed {
		return nil, decisionRefusal(d, fromDomain)
	}
	if d.Domain.Sandbox {
		if ref := g.countSandbox(ctx, acct, d, len(env.Rcpts), fromDomain); ref != nil {
			return nil, ref
		}
	}
	if submit {
		g.prepare(h, env)
	}
	var hb bytes.Buffer
	hb.Grow(h.Size())
	if _, err := h.WriteTo(&hb); err != nil {
		return nil, internal(env.ID, fmt.Errorf("gate: write header: %w", err), d, fromDomain)
	}
	bounceTo, err := g.bounceAddress(env, d.Domain)
	if err != nil {
		return nil, internal(env.ID, err, d, fromDomain)
	}
	res := &Result{ID: env.ID, Header: hb.Bytes(), Body: body, Account: acct, Decision: d, FromDomain: fromDomain,
		EnvelopeFrom: bounceTo}
	start := time.Now()
	sig, err := g.sign(ctx, res.Header, body, d.Domain)
	res.Sign = time.Since(start)
	if err != nil {
		return nil, internal(env.ID, err, d, fromDomain)
	}
	res.Signature = sig
	return res, nil
}

// account resolves username on the current snapshot; accountID, when
// set, must still be that account's id.
func (g *Gate) account(username, accountID string) (*policy.Snapshot, *policy.Account, *Refusal) {
	snap, err := g.pol.Current()
	if err != nil {
		d := policy.Decision{Temporary: true, Reason: policy.NotReady}
		return nil, nil, &Refusal{Code: 451, Enhanced: [3]int{4, 3, 0}, Text: d.Message(), Reason: string(d.Reason), Decision: d}
	}
	acct, ok := snap.Account(username)
	if !ok || (accountID != "" && acct.ID != accountID) {
		return nil, nil, &Refusal{Code: 550, Enhanced: [3]int{5, 7, 1}, Reason: "unknown_account",
			Text: fmt.Sprintf("SMTP account %q is not known to sendergate (removed, or never created)", username)}
	}
	return snap, acct, nil
}

// countSandbox counts the message's recipients against the organization's
// daily sandbox limit (the only storage access per message).
func (g *Gate) countSandbox(ctx context.Context, acct *policy.Account, d policy.Decision, n int, fromDomain string) *Refusal {
	if n < 1 {
		n = 1 // a milter that saw no recipient still sends one message
	}
	day := g.opts.Now().UTC().Format("2006-01-02")
	ok, err := g.counter.IncrSandbox(ctx, acct.OrgID, day, n, g.opts.SandboxLimit)
	if err != nil {
		g.metrics.sandbox.WithLabelValues("error").Add(float64(n))
		g.log.Error("sandbox counter failed; refusing temporarily", "org", acct.Org, "err", err)
		d := policy.Decision{Temporary: true, Reason: policy.Internal, Domain: d.Domain, DomainName: d.DomainName}
		return &Refusal{Code: 451, Enhanced: [3]int{4, 3, 0}, Reason: string(d.Reason), Decision: d, FromDomain: fromDomain,
			Text: "the sandbox counter is unavailable, try again later"}
	}
	if !ok {
		g.metrics.sandbox.WithLabelValues("limit").Add(float64(n))
		d := policy.Decision{Temporary: true, Reason: policy.SandboxLimit, Domain: d.Domain, DomainName: d.DomainName}
		return decisionRefusal(d, fromDomain)
	}
	g.metrics.sandbox.WithLabelValues("admitted").Add(float64(n))
	return nil
}

// prepare applies the submission rewrites (RFC 6409 8).
func (g *Gate) prepare(h *msg.Header, env *Envelope) {
	proto := "ESMTPA"
	if env.TLS {
		proto = "ESMTPSA" // RFC 3848
	}
	t := env.Time
	if t.IsZero() {
		t = g.opts.Now()
	}
	msg.Prepare(h, g.opts.Hostname, msg.TraceInfo{
		Helo: env.Helo, RemoteIP: env.RemoteIP, ID: env.ID, Protocol: proto, Recipients: env.Rcpts, Time: t,
	}, g.opts.Now())
}

// sign returns the DKIM-Signature field over header and body, admitted
// among at most Options.Signers concurrent signatures.
func (g *Gate) sign(ctx context.Context, header, body []byte, d *policy.Domain) (string, error) {
	select {
	case g.signing <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("gate: waiting to sign: %w", ctx.Err())
	}
	defer func() { <-g.signing }()
	key, err := g.pol.Signer(ctx, d)
	if err != nil {
		return "", err
	}
	// RFC 6376 5: d= is the From domain (never the envelope's), with the
	// domain's own selector and key. *net.Buffers is an io.Reader over both
	// slices as they are, with no intermediate copy.
	bufs := net.Buffers{header, body}
	sig, err := dkim.Sign(&bufs, d.Name, d.Selector, key)
	if err != nil {
		return "", fmt.Errorf("gate: sign as %s: %w", d.Name, err)
	}
	return sig, nil
}

// bounceAddress is the rewritten envelope sender of message env from
// domain d: bounce+ID@ its bounce domain, where ID carries the message id
// under a MAC when BounceIDs is set, bound to the recipient when the
// message has one (so its bounces can suppress that address only).
func (g *Gate) bounceAddress(env *Envelope, d *policy.Domain) (string, error) {
	id := env.ID
	if g.opts.BounceIDs != nil {
		t := env.Time
		if t.IsZero() {
			t = g.opts.Now()
		}
		rcpt := ""
		if len(env.Rcpts) == 1 {
			rcpt = bareAddress(env.Rcpts[0])
		}
		var err error
		if id, err = g.opts.BounceIDs.EncodeFor(id, d.BounceDomain, rcpt, t); err != nil {
			return "", fmt.Errorf("gate: bounce address: %w", err)
		}
	}
	return "bounce+" + id + "@" + d.BounceDomain, nil
}

// NewID returns a fresh message id: 16 lowercase hex digits from
// crypto/rand, safe in a local part, a Received id and a log line.
func NewID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// splitMessage parses the header of data and returns it with the body,
// which is a sub-slice of data (with bare LF line endings turned into CRLF,
// which copies only when there are any).
func splitMessage(data []byte) (*msg.Header, []byte, error) {
	rd := bytes.NewReader(data)
	br := headerReaders.Get().(*bufio.Reader)
	br.Reset(rd)
	h, err := msg.ReadHeader(br)
	off := len(data) - rd.Len() - br.Buffered()
	br.Reset(nil) // hold no reference to data in the pool
	headerReaders.Put(br)
	if err != nil {
		return nil, nil, err
	}
	return h, toCRLF(data[off:]), nil
}

// headerReaders holds the bufio.Readers splitMessage parses headers
// through: a message's header is copied out field by field, so the 4 KiB
// buffer is free again once ReadHeader returns.
var headerReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

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
