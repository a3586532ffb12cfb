// Package suppress keeps each instance's in-memory copy of the
// organizations' suppression lists, in sync with the store by polling its
// change feed, so the gate answers "is this recipient suppressed?" without
// a database query; and it records bounces and complaints under the
// [suppression] rules.
package suppress

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/dnsname"
	"github.com/sendergate/sendergate/store"
)

// Entry is a suppressed recipient as the gate sees it.
type Entry struct {
	OrgID      string
	Email      string
	Reason     string // bounce, complaint, manual
	Status     string // e.g. "5.1.1"
	Diagnostic string
	Since      time.Time
	ExpiresAt  time.Time // zero = never
}

// Text is the refusal text after "550 5.1.1": who, since when, why and
// how to lift it (the admin API at apiBase, organization orgName).
func (e Entry) Text(apiBase, orgName string) string {
	why := e.Reason
	switch e.Reason {
	case store.ReasonBounce:
		why = "bounce"
		if strings.HasPrefix(e.Status, "5") {
			why = "hard bounce"
		} else if strings.HasPrefix(e.Status, "4") {
			why = "repeated soft bounces"
		}
	case store.ReasonManual:
		why = "added manually"
	}
	if e.Status != "" {
		why += " " + e.Status
	}
	if e.Diagnostic != "" {
		why += ": " + e.Diagnostic
	}
	return fmt.Sprintf("<%s> is on the suppression list of this organization since %s (%s); remove it with DELETE %s/v1/orgs/%s/suppressions/%s",
		e.Email, e.Since.UTC().Format("2006-01-02"), why, strings.TrimSuffix(apiBase, "/"), orgName, e.Email)
}

// Normalize lowercases the whole address (as SES does) and puts its
// domain in IDNA A-label form.
func Normalize(email string) (string, error) {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 {
		return "", fmt.Errorf("suppress: %q is not an email address", email)
	}
	d, err := dnsname.Normalize(email[at+1:])
	if err != nil {
		return "", fmt.Errorf("suppress: address %q: %w", email, err)
	}
	return strings.ToLower(email[:at]) + "@" + d, nil
}

// Feed is the store's change feed of suppression entries.
type Feed interface {
	SuppressionChanges(ctx context.Context, since int64, limit int) ([]store.Suppression, error)
}

// List is the in-memory, concurrency-safe set of suppressed recipients.
type List struct {
	feed    Feed
	now     func() time.Time
	mu      sync.Mutex // serialises Sync
	entries sync.Map   // orgID+"\x00"+email -> Entry
	seq     int64
	refused *prometheus.CounterVec
}

// NewList returns an empty List fed by feed; reg (may be nil) registers
// sendergate_suppressed_recipients_refused_total{reason}.
func NewList(feed Feed, reg prometheus.Registerer) *List {
	l := &List{feed: feed, now: time.Now, refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendergate_suppressed_recipients_refused_total",
		Help: "Recipients refused at RCPT because they are suppressed, by reason.",
	}, []string{"reason"})}
	if reg != nil {
		reg.MustRegister(l.refused)
	}
	return l
}

// Sync applies every change since the last one seen.
func (l *List) Sync(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		ch, err := l.feed.SuppressionChanges(ctx, l.seq, 1000)
		if err != nil {
			return fmt.Errorf("suppress: sync: %w", err)
		}
		for _, r := range ch {
			k := r.OrgID + "\x00" + r.Email
			if r.Deleted {
				l.entries.Delete(k)
			} else {
				l.entries.Store(k, Entry{OrgID: r.OrgID, Email: r.Email, Reason: r.Reason, Status: r.Status,
					Diagnostic: r.Diagnostic, Since: r.FirstSeen.Time, ExpiresAt: r.ExpiresAt.Time})
			}
			l.seq = r.Seq
		}
		if len(ch) < 1000 {
			return nil
		}
	}
}

// Run syncs every interval until ctx ends; errors are retried at the next
// tick.
func (l *List) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		_ = l.Sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Lookup reports the organization's live entry for email (normalized by
// Lookup), honouring expiry.
func (l *List) Lookup(orgID, email string) (Entry, bool) {
	n, err := Normalize(email)
	if err != nil {
		return Entry{}, false
	}
	v, ok := l.entries.Load(orgID + "\x00" + n)
	if !ok {
		return Entry{}, false
	}
	e := v.(Entry)
	if !e.ExpiresAt.IsZero() && !e.ExpiresAt.After(l.now()) {
		return Entry{}, false
	}
	return e, true
}

// Refused counts a recipient refused for reason.
func (l *List) Refused(reason string) { l.refused.WithLabelValues(reason).Inc() }

// Kinds of Feedback.
const (
	Hard      = "hard"
	Soft      = "soft"
	Complaint = "complaint"
)

// Recipient is one recipient a bounce or complaint reports.
type Recipient struct {
	Email      string
	Status     string
	Diagnostic string
	Kind       string // Hard, Soft or Complaint
}

// Feedback is a bounce or complaint linked to a sent message.
type Feedback struct {
	OrgID, MessageID, Domain string
	Recipients               []Recipient
	At                       time.Time
}

// Writer is the store side of a Recorder.
type Writer interface {
	RecordFeedback(ctx context.Context, f store.Feedback, kind string, rules store.SuppressionRules) (bool, error)
	RecordUnattributedComplaint(ctx context.Context, f store.Feedback) error
}

// Recorder applies bounces and complaints under the config's rules.
type Recorder struct {
	w     Writer
	rules store.SuppressionRules
	added *prometheus.CounterVec
}

// NewRecorder returns a Recorder; reg (may be nil) registers
// sendergate_suppressions_total{reason}.
func NewRecorder(w Writer, rules store.SuppressionRules, reg prometheus.Registerer) *Recorder {
	r := &Recorder{w: w, rules: rules, added: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendergate_suppressions_total",
		Help: "Recipients added to a suppression list, by reason.",
	}, []string{"reason"})}
	if reg != nil {
		reg.MustRegister(r.added)
	}
	return r
}

// RecordUnattributed records a complaint about message f that names no
// recipient (its Recipients are ignored): an event, no suppression.
func (r *Recorder) RecordUnattributed(ctx context.Context, f Feedback) error {
	if err := r.w.RecordUnattributedComplaint(ctx, store.Feedback{OrgID: f.OrgID, Domain: f.Domain, MessageID: f.MessageID, At: f.At}); err != nil {
		return fmt.Errorf("suppress: record a complaint about %s: %w", f.MessageID, err)
	}
	return nil
}

// Record applies f and returns how many recipients became suppressed.
func (r *Recorder) Record(ctx context.Context, f Feedback) (int, error) {
	n := 0
	for _, rc := range f.Recipients {
		email, err := Normalize(rc.Email)
		if err != nil {
			continue // an unusable Final-Recipient suppresses nothing
		}
		kind := rc.Kind
		if kind != Soft && kind != Complaint {
			kind = Hard
		}
		now, err := r.w.RecordFeedback(ctx, store.Feedback{OrgID: f.OrgID, Email: email, Domain: f.Domain, MessageID: f.MessageID,
			Status: rc.Status, Diagnostic: rc.Diagnostic, At: f.At}, kind, r.rules)
		if err != nil {
			return n, fmt.Errorf("suppress: record %s: %w", email, err)
		}
		if now {
			n++
			reason := store.ReasonBounce
			if kind == Complaint {
				reason = store.ReasonComplaint
			}
			r.added.WithLabelValues(reason).Inc()
		}
	}
	return n, nil
}
