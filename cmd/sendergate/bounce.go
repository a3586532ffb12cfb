package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sendergate/sendergate/bounce"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/suppress"
)

// returnPaths answers the bounce receiver from the store: one indexed
// query per RCPT (bounces are rare next to sends, and the snapshot stays
// free of an index of every return-path domain).
type returnPaths struct {
	st   *store.Store
	zone string
}

// ReturnPathOwner implements bounce.Domains.
func (r returnPaths) ReturnPathOwner(ctx context.Context, domain string) (bounce.Owner, bool, error) {
	label, name, token, ok := domains.ParseEnvelopeDomain(domain, r.zone)
	if !ok {
		return bounce.Owner{}, false, nil
	}
	o, ok, err := r.st.ReturnPathOwner(ctx, label, name, token)
	return bounce.Owner{OrgID: o.OrgID, Domain: o.Domain}, ok, err
}

// bounceSink records authenticated bounces and complaints in the
// suppression list (which emits the message.bounced, message.complained
// and recipient.suppressed events, and so the webhooks).
type bounceSink struct {
	recorder *suppress.Recorder
	now      func() time.Time
}

// Bounce implements bounce.Sink. Recording is idempotent per recipient and
// message, so a sender that retries after a 451 counts once.
func (s bounceSink) Bounce(ctx context.Context, b *bounce.Bounce) error {
	f := suppress.Feedback{OrgID: b.OrgID, MessageID: b.MessageID, Domain: b.SendingDomain, At: s.now()}
	for _, r := range b.Report.Recipients {
		if _, err := suppress.Normalize(r.Address); err != nil {
			continue // an unusable address suppresses nothing
		}
		f.Recipients = append(f.Recipients, suppress.Recipient{Email: r.Address, Status: r.Status,
			Diagnostic: r.Diagnostic, Kind: recipientKind(b.Report.Kind, r)})
	}
	if len(f.Recipients) == 0 && b.Report.Kind == bounce.Complaint {
		// A feedback loop that redacts the recipient: the event still
		// names the message (message_id), nothing is suppressed.
		return s.recorder.RecordUnattributed(ctx, f)
	}
	_, err := s.recorder.Record(ctx, f)
	return err
}

// recipientKind classifies one recipient of a report: a complaint report
// is a complaint for each; in a DSN each recipient has its own action and
// status (one report may carry a failure and a delay).
func recipientKind(k bounce.Kind, r bounce.Recipient) string {
	switch {
	case k == bounce.Complaint:
		return suppress.Complaint
	case strings.EqualFold(r.Action, "delayed"), strings.HasPrefix(r.Status, "4."):
		return suppress.Soft
	case strings.EqualFold(r.Action, "failed"), strings.HasPrefix(r.Status, "5."):
		return suppress.Hard
	case k == bounce.Soft:
		return suppress.Soft
	}
	return suppress.Hard
}

// setupBounce starts the receiver of the mail that comes back to the
// bounce+ID@ return-path addresses (bounce.listen; off when empty), and
// the periodic expiry of suppression entries and old soft bounces.
func (d *daemon) setupBounce(bg context.Context) error {
	cfg := d.cfg
	rules := store.SuppressionRules{SoftLimit: cfg.Suppression.SoftLimit, SoftWindow: cfg.Suppression.SoftWindow.Duration,
		TTL: cfg.Suppression.TTL.Duration}
	go d.expireSuppressions(bg, time.Minute, rules.SoftWindow)
	if cfg.Bounce.Listen == "" {
		d.log.Info("bounce.listen is empty: bounces are not received")
		return nil
	}
	srv, err := bounce.New(bounce.Options{Hostname: cfg.Hostname, MaxMessageBytes: cfg.Bounce.MaxMessageBytes,
		MaxAge: cfg.Bounce.MaxAge.Duration, TLS: d.tlsConf, Domains: returnPaths{st: d.st, zone: cfg.DNS.Zone},
		Sink:  bounceSink{recorder: suppress.NewRecorder(d.st, rules, d.reg), now: time.Now},
		Codec: d.bounceIDs, Logger: d.log, Registerer: d.reg})
	if err != nil {
		return fmt.Errorf("bounce: %w", err)
	}
	if err := d.listen("bounce.listen", cfg.Bounce.Listen, srv.Serve); err != nil {
		return err
	}
	d.onClose(func(context.Context) error { return srv.Close() })
	return nil
}

// expireSuppressions tombstones expired suppression entries (suppression.ttl)
// and forgets soft bounces older than the soft window, every interval.
// Several instances may run it: each expiry is one transaction.
func (d *daemon) expireSuppressions(ctx context.Context, interval, softWindow time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := d.st.ExpireSuppressions(ctx, time.Now(), softWindow); err != nil && ctx.Err() == nil {
			d.log.Warn("expiring suppressions failed; retried in a minute", "err", err)
		} else if n > 0 {
			d.log.Info("suppressions expired", "entries", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
