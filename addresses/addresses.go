// Package addresses authorizes individual mailboxes by confirmation email:
// an organization adds an address of one of its verified domains, the
// mailbox gets a message with a single-use link, and following the link
// confirms it. Confirmed addresses are listed for campaign tools and, with
// submission.require_confirmed_address, are the only From mailboxes the
// policy accepts.
//
// Tokens carry 256 bits from crypto/rand, only their SHA-256 is stored,
// they are single use and expire after confirm.ttl; resend issues a new one
// and invalidates the old.
package addresses

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"strings"
	"time"

	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/relay"
	"github.com/sendergate/sendergate/store"
)

// Address statuses.
const (
	Pending   = "pending"
	Confirmed = "confirmed"
	Expired   = "expired"
)

// Errors of Confirm.
var (
	ErrUnknown = errors.New("addresses: unknown confirmation token")
	ErrExpired = errors.New("addresses: confirmation token expired")
	ErrUsed    = errors.New("addresses: confirmation token already used")
)

// RateLimitError refuses a resend over the limit. It unwraps to a
// *domains.StateError with code rate_limited; RetryAfter says how long
// until the next resend is allowed.
type RateLimitError struct {
	Limit int       // Options.ResendLimit
	Until time.Time // when the window that is full ends
	Now   time.Time // when the resend was refused
}

// RetryAfter is the time until the next resend is allowed, at least a second.
func (e *RateLimitError) RetryAfter() time.Duration {
	return max(e.Until.Sub(e.Now), time.Second)
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("this address was already resent %d times, the most allowed within one hour of its first resend; the next resend is possible in %s (at %s UTC)",
		e.Limit, e.RetryAfter().Round(time.Second), e.Until.UTC().Format("15:04:05"))
}

func (e *RateLimitError) Unwrap() error {
	return &domains.StateError{Code: "rate_limited", Message: e.Error()}
}

// DeliveryError means the address was saved but its confirmation email
// could not be handed to the relay; resend retries.
type DeliveryError struct{ Err error }

func (e *DeliveryError) Error() string {
	return "the address is saved as pending, but the confirmation email could not be handed to the relay (" + e.Err.Error() + "); retry with resend"
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Signer is the DKIM identity confirmation mail is signed with.
type Signer struct {
	Domain, Selector string
	Key              crypto.Signer
}

// Options configure the service.
type Options struct {
	PublicURL   string        // admin.public_url: base of the link
	From        string        // confirm.from
	TTL         time.Duration // confirm.ttl
	Hostname    string        // for Message-ID
	ResendLimit int           // resends per address in the hour from the first one; default 5
	Sender      relay.Sender
	Signer      Signer
	Logger      *slog.Logger
	Now         func() time.Time
}

// Service runs address confirmation on top of the store.
type Service struct {
	st   *store.Store
	opts Options
}

// New returns the service.
func New(st *store.Store, opts Options) *Service {
	if opts.ResendLimit <= 0 {
		opts.ResendLimit = 5
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	return &Service{st: st, opts: opts}
}

// Normalize validates an address (RFC 5321 4.5.3.1 limits: local part <= 64
// octets, domain <= 255, path <= 254) and returns it with the domain as a
// lowercase A-label and the local part kept as given.
func Normalize(email string) (addr, domain string, err error) {
	fe := func(msg string) error { return &domains.FieldError{Field: "email", Message: msg} }
	email = strings.TrimSpace(email)
	if email == "" {
		return "", "", fe("email is required")
	}
	a, perr := mail.ParseAddress(email)
	if perr != nil || a.Name != "" || strings.ContainsAny(email, "<>") {
		return "", "", fe(fmt.Sprintf("%q is not a plain email address (local@domain)", email))
	}
	// The local part as given: mail.ParseAddress unquotes it ("a b"@x -> a b@x).
	at := strings.LastIndexByte(email, '@')
	local, dom := email[:at], email[at+1:]
	if len(local) > 64 {
		return "", "", fe("the local part is longer than 64 octets (RFC 5321 4.5.3.1.1)")
	}
	if strings.HasPrefix(dom, "[") || net.ParseIP(dom) != nil {
		return "", "", fe("address literals are not accepted; use a domain")
	}
	dom, derr := domains.NormalizeDomain(dom)
	if derr != nil {
		return "", "", fe("the domain is not valid: " + derr.Error())
	}
	addr = local + "@" + dom
	if len(addr) > 254 {
		return "", "", fe("the address is longer than 254 octets (RFC 5321 4.5.3.1.3)")
	}
	return addr, dom, nil
}

func subject(email string) string { return "address:" + email }

func newToken() (token, hash string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("addresses: crypto/rand failed: " + err.Error())
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashToken(token)
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Add registers email as a pending address of org and sends the
// confirmation email. The domain must be verified (or failing) in org.
func (s *Service) Add(ctx context.Context, org store.Org, email string) (store.Address, error) {
	addr, dom, err := Normalize(email)
	if err != nil {
		return store.Address{}, err
	}
	if err := s.domainVerified(ctx, org, dom); err != nil {
		return store.Address{}, err
	}
	token, hash := newToken()
	now := s.opts.Now()
	a := store.Address{ID: store.NewID(), OrgID: org.ID, Email: addr, Domain: dom, Status: Pending, TokenHash: hash,
		TokenExpiresAt: store.At(now.Add(s.opts.TTL)), CreatedAt: store.At(now)}
	ev := store.Event{OrgID: org.ID, Subject: subject(addr), Kind: "address.added", At: store.At(now)}
	if err := s.st.CreateAddress(ctx, a, ev); err != nil {
		return store.Address{}, err
	}
	if err := s.send(ctx, a, token); err != nil {
		return a, err
	}
	return a, nil
}

// domainVerified returns a state error unless dom is verified (or failing)
// in org: only then may its mailboxes be authorized.
func (s *Service) domainVerified(ctx context.Context, org store.Org, dom string) error {
	d, err := s.st.DomainByName(ctx, org.ID, dom)
	if errors.Is(err, store.ErrNotFound) {
		return &domains.StateError{Code: "domain_not_verified",
			Message: fmt.Sprintf("domain %s is not a domain of this organization; add and verify it first", dom)}
	}
	if err != nil {
		return err
	}
	if !domains.CanSend(domains.Status(d.Status)) {
		return &domains.StateError{Code: "domain_not_verified",
			Message: fmt.Sprintf("domain %s is %s, not verified; verify it before adding its addresses", dom, d.Status)}
	}
	return nil
}

// Resend issues a new token (the old one stops working) and sends it again.
// It counts resends, not emails: the email of Add is free, and at most
// ResendLimit resends of an address are allowed in the hour that begins
// with the first of them; past that it returns a *RateLimitError.
func (s *Service) Resend(ctx context.Context, org store.Org, email string) (store.Address, error) {
	addr, _, err := Normalize(email)
	if err != nil {
		return store.Address{}, err
	}
	prev, err := s.st.AddressByEmail(ctx, org.ID, addr)
	if err != nil {
		return store.Address{}, err
	}
	if prev.Status == Confirmed {
		return prev, &domains.StateError{Code: "already_confirmed", Message: fmt.Sprintf("%s is already confirmed", addr)}
	}
	if err := s.domainVerified(ctx, org, prev.Domain); err != nil {
		return prev, err
	}
	now := s.opts.Now()
	a := prev
	if a.ResendWindow.IsZero() || now.Sub(a.ResendWindow.Time) >= time.Hour {
		a.ResendWindow, a.ResendCount = store.At(now), 0
	}
	if a.ResendCount >= s.opts.ResendLimit {
		return prev, &RateLimitError{Limit: s.opts.ResendLimit, Until: a.ResendWindow.Add(time.Hour), Now: now}
	}
	a.ResendCount++
	token, hash := newToken()
	a.Status, a.TokenHash, a.TokenExpiresAt = Pending, hash, store.At(now.Add(s.opts.TTL))
	ev := store.Event{OrgID: org.ID, Subject: subject(addr), Kind: "address.resent", At: store.At(now)}
	if err := s.st.UpdateAddress(ctx, prev, a, &ev); err != nil {
		return prev, err
	}
	if err := s.send(ctx, a, token); err != nil {
		return a, err
	}
	return a, nil
}

// Delete removes the address (a confirmed one stops being accepted).
func (s *Service) Delete(ctx context.Context, org store.Org, email string) error {
	addr, _, err := Normalize(email)
	if err != nil {
		return store.ErrNotFound
	}
	ev := store.Event{OrgID: org.ID, Subject: subject(addr), Kind: "address.deleted", At: store.At(s.opts.Now())}
	return s.st.DeleteAddress(ctx, org.ID, addr, ev)
}

// Check reports what Confirm would do with token, changing nothing: the
// address it would confirm, or ErrUnknown, ErrExpired or ErrUsed. The
// confirmation page calls it on GET, which link scanners may send.
func (s *Service) Check(ctx context.Context, token string) (store.Address, error) {
	if len(token) < 20 || len(token) > 100 {
		return store.Address{}, ErrUnknown
	}
	a, err := s.st.AddressByTokenHash(ctx, hashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return store.Address{}, ErrUnknown
	}
	if err != nil {
		return store.Address{}, err
	}
	switch {
	case a.Status == Confirmed:
		return a, ErrUsed
	case a.Status == Expired || !s.opts.Now().Before(a.TokenExpiresAt.Time):
		return a, ErrExpired
	}
	return a, nil
}

// Confirm uses a token: the address becomes confirmed, or the error says
// why not (ErrUnknown, ErrExpired, ErrUsed).
func (s *Service) Confirm(ctx context.Context, token string) (store.Address, error) {
	if len(token) < 20 || len(token) > 100 {
		return store.Address{}, ErrUnknown
	}
	prev, err := s.st.AddressByTokenHash(ctx, hashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return store.Address{}, ErrUnknown
	}
	if err != nil {
		return store.Address{}, err
	}
	switch prev.Status {
	case Confirmed:
		return prev, ErrUsed
	case Expired:
		return prev, ErrExpired
	}
	now := s.opts.Now()
	a := prev
	if !now.Before(prev.TokenExpiresAt.Time) {
		a.Status = Expired
		ev := store.Event{OrgID: a.OrgID, Subject: subject(a.Email), Kind: "address.expired", At: store.At(now)}
		if err := s.st.UpdateAddress(ctx, prev, a, &ev); err != nil && !errors.Is(err, store.ErrConflict) {
			return prev, err
		}
		return a, ErrExpired
	}
	a.Status, a.ConfirmedAt = Confirmed, store.At(now)
	ev := store.Event{OrgID: a.OrgID, Subject: subject(a.Email), Kind: "address.confirmed", At: store.At(now)}
	if err := s.st.UpdateAddress(ctx, prev, a, &ev); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return prev, ErrUsed // a concurrent use won
		}
		return prev, err
	}
	org := a.OrgID
	if o, err := s.st.OrgByID(ctx, a.OrgID); err == nil {
		org = o.Name // people know organizations by name
	}
	s.opts.Logger.Info("address confirmed", "org", org, "email", a.Email)
	return a, nil
}

// send builds, signs and hands over the confirmation email.
func (s *Service) send(ctx context.Context, a store.Address, token string) error {
	link := s.opts.PublicURL + "/confirm?token=" + token
	id := store.NewID()
	raw, err := s.message(a.Email, link, id)
	if err != nil {
		return err
	}
	m := &relay.Message{ID: "confirm-" + id, From: s.opts.From, To: []string{a.Email}, Data: [][]byte{raw}}
	if err := s.opts.Sender.Send(ctx, m); err != nil {
		s.opts.Logger.Warn("confirmation email not handed over", "email", a.Email, "err", err)
		return &DeliveryError{Err: err}
	}
	s.opts.Logger.Info("confirmation email sent", "email", a.Email, "id", m.ID)
	return nil
}

// message renders the confirmation email (multipart/alternative, plain
// text and HTML) with its DKIM-Signature on top.
func (s *Service) message(to, link, id string) ([]byte, error) {
	var b bytes.Buffer
	boundary := "sg-" + id
	now := s.opts.Now()
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", s.opts.From)
	hdr("To", to)
	hdr("Subject", "Confirm your sender address")
	hdr("Date", now.Format(time.RFC1123Z))
	hdr("Message-ID", "<confirm-"+id+"@"+s.opts.Hostname+">")
	hdr("MIME-Version", "1.0")
	hdr("Auto-Submitted", "auto-generated")
	hdr("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	b.WriteString("--" + boundary + "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
	fmt.Fprintf(&b, "Someone asked to authorize %s as a sender address.\r\n\r\nTo confirm, open this link and press Confirm on the page it shows:\r\n\r\n%s\r\n\r\nThe link works once and expires in %s. If you did not ask for this, ignore this message.\r\n",
		to, link, humanDuration(s.opts.TTL))
	b.WriteString("\r\n--" + boundary + "\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
	fmt.Fprintf(&b, "<p>Someone asked to authorize <b>%s</b> as a sender address.</p>\r\n<p><a href=\"%s\">Open the confirmation page</a> and press Confirm.</p>\r\n<p>The link works once and expires in %s. If you did not ask for this, ignore this message.</p>\r\n",
		htmlEscape(to), htmlEscape(link), humanDuration(s.opts.TTL))
	b.WriteString("\r\n--" + boundary + "--\r\n")
	sig, err := signMessage(b.Bytes(), s.opts.Signer)
	if err != nil {
		return nil, fmt.Errorf("addresses: sign confirmation: %w", err)
	}
	return append([]byte(sig), b.Bytes()...), nil
}

func htmlEscape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")
	return r.Replace(s)
}

// humanDuration writes d as a person would: "24 hours", "3 days",
// "1 hour 30 minutes", "15 minutes"; Go's form ("90s") otherwise.
func humanDuration(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d > time.Hour && d%time.Minute == 0:
		return unit(int64(d/time.Hour), "hour") + " " + unit(int64(d%time.Hour/time.Minute), "minute")
	case d >= time.Minute && d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	}
	return d.String()
}
