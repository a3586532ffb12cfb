package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Webhook is an organization's webhook. Secret is the HMAC signing secret,
// stored as is so that deliveries can be signed; the API shows it only in
// the reply that creates the webhook.
type Webhook struct {
	ID        string `db:"id"`
	OrgID     string `db:"org_id"`
	URL       string `db:"url"`
	Events    string `db:"events"` // JSON list of event names
	Secret    string `db:"secret"`
	CreatedAt Time   `db:"created_at"`
}

// EventList returns the webhook's event names.
func (w Webhook) EventList() []string {
	var evs []string
	_ = json.Unmarshal([]byte(w.Events), &evs)
	return evs
}

// Delivery is one event to POST to one webhook.
type Delivery struct {
	ID             string `db:"id"`
	WebhookID      string `db:"webhook_id"`
	OrgID          string `db:"org_id"`
	Event          string `db:"event"`
	Payload        string `db:"payload"`
	CreatedAt      Time   `db:"created_at"`
	NextAttemptAt  Time   `db:"next_attempt_at"`
	Attempts       int    `db:"attempts"`
	LeaseUntil     Time   `db:"lease_until"`
	LeaseOwner     string `db:"lease_owner"`
	Status         string `db:"status"` // pending | delivered | failed
	LastStatusCode int    `db:"last_status_code"`
	LastError      string `db:"last_error"`
	DeliveredAt    Time   `db:"delivered_at"`
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// WebhookEvents are the event kinds that webhooks can subscribe to.
var WebhookEvents = []string{
	"domain.verified", "domain.failing", "domain.revoked", "domain.deleted",
	"address.confirmed", "message.bounced", "message.complained", "recipient.suppressed",
}

// IsWebhookEvent reports whether kind is one of WebhookEvents.
func IsWebhookEvent(kind string) bool {
	for _, k := range WebhookEvents {
		if k == kind {
			return true
		}
	}
	return false
}

const webhookCols = `id, org_id, url, events, secret, created_at`
const deliveryCols = `id, webhook_id, org_id, event, payload, created_at, next_attempt_at, attempts, lease_until, lease_owner,
	status, last_status_code, last_error, delivered_at`

// CreateWebhook saves a webhook (ID, OrgID, URL, Events, Secret, CreatedAt set).
func (s *Store) CreateWebhook(ctx context.Context, w Webhook) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO webhooks (`+webhookCols+`) VALUES (?, ?, ?, ?, ?, ?)`),
		w.ID, w.OrgID, w.URL, w.Events, w.Secret, w.CreatedAt)
	if isUnique(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("store: create webhook: %w", err)
	}
	return nil
}

// Webhooks returns the organization's webhooks, oldest first.
func (s *Store) Webhooks(ctx context.Context, orgID string) ([]Webhook, error) {
	ws := []Webhook{}
	if err := s.db.SelectContext(ctx, &ws, s.db.Rebind(`SELECT `+webhookCols+` FROM webhooks WHERE org_id = ? ORDER BY id`), orgID); err != nil {
		return nil, fmt.Errorf("store: webhooks: %w", err)
	}
	return ws, nil
}

// Webhook returns one webhook of the organization (ErrNotFound for
// another organization's).
func (s *Store) Webhook(ctx context.Context, orgID, id string) (Webhook, error) {
	var w Webhook
	err := s.db.GetContext(ctx, &w, s.db.Rebind(`SELECT `+webhookCols+` FROM webhooks WHERE org_id = ? AND id = ?`), orgID, id)
	if err != nil {
		if notFound(err) == ErrNotFound {
			return Webhook{}, ErrNotFound
		}
		return Webhook{}, fmt.Errorf("store: webhook %s: %w", id, err)
	}
	return w, nil
}

// WebhookByID returns a webhook whatever its organization (for the deliverer).
func (s *Store) WebhookByID(ctx context.Context, id string) (Webhook, error) {
	var w Webhook
	err := s.db.GetContext(ctx, &w, s.db.Rebind(`SELECT `+webhookCols+` FROM webhooks WHERE id = ?`), id)
	if err != nil {
		if notFound(err) == ErrNotFound {
			return Webhook{}, ErrNotFound
		}
		return Webhook{}, fmt.Errorf("store: webhook %s: %w", id, err)
	}
	return w, nil
}

// DeleteWebhook deletes a webhook of the organization and its deliveries.
func (s *Store) DeleteWebhook(ctx context.Context, orgID, id string) error {
	err := affected(s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM webhooks WHERE org_id = ? AND id = ?`), orgID, id))
	if err == ErrNotFound {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: delete webhook %s: %w", id, err)
	}
	return nil
}

// Deliveries returns up to limit of the webhook's most recent deliveries,
// newest first.
func (s *Store) Deliveries(ctx context.Context, webhookID string, limit int) ([]Delivery, error) {
	ds := []Delivery{}
	if err := s.db.SelectContext(ctx, &ds, s.db.Rebind(`SELECT `+deliveryCols+` FROM webhook_deliveries WHERE webhook_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`), webhookID, limit); err != nil {
		return nil, fmt.Errorf("store: webhook deliveries: %w", err)
	}
	return ds, nil
}

// LeaseDueDeliveries takes up to limit pending deliveries due at or before
// now whose lease (if any) has run out, and leases them to owner until
// until. On PostgreSQL the rows are selected FOR UPDATE SKIP LOCKED and the
// lease is a conditional update, so two instances never hold one row.
func (s *Store) LeaseDueDeliveries(ctx context.Context, owner string, now, until time.Time, limit int) ([]Delivery, error) {
	var out []Delivery
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		out = nil
		var ds []Delivery
		q := `SELECT ` + deliveryCols + ` FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ?
			AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_attempt_at LIMIT ?`
		if s.dialect == "postgres" {
			q += ` FOR UPDATE SKIP LOCKED`
		}
		if err := tx.SelectContext(ctx, &ds, tx.Rebind(q), At(now), At(now), limit); err != nil {
			return fmt.Errorf("store: due webhook deliveries: %w", err)
		}
		for _, d := range ds {
			res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE webhook_deliveries SET lease_until = ?, lease_owner = ?
				WHERE id = ? AND status = 'pending' AND (lease_until IS NULL OR lease_until <= ?)`), At(until), owner, d.ID, At(now))
			if err := affected(res, err); err == ErrNotFound {
				continue
			} else if err != nil {
				return fmt.Errorf("store: lease webhook delivery: %w", err)
			}
			d.LeaseUntil, d.LeaseOwner = At(until), owner
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FinishAttempt records an attempt at a delivery leased by owner: status
// is the new status (pending to retry at next), code the HTTP status (0
// when none), errText what went wrong. It reports false when owner no
// longer holds the lease.
func (s *Store) FinishAttempt(ctx context.Context, id, owner, status string, code int, errText string, now, next time.Time) (bool, error) {
	var delivered Time
	if status == DeliveryDelivered {
		delivered = At(now)
	}
	if next.IsZero() {
		next = now
	}
	err := affected(s.db.ExecContext(ctx, s.db.Rebind(`UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1,
		last_status_code = ?, last_error = ?, next_attempt_at = ?, delivered_at = ?, lease_until = NULL, lease_owner = ''
		WHERE id = ? AND lease_owner = ? AND status = 'pending'`), status, code, errText, At(next), delivered, id, owner))
	if err == ErrNotFound {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: finish webhook delivery %s: %w", id, err)
	}
	return true, nil
}

// EarliestDelivery returns when the earliest pending delivery is due, zero
// when none is pending.
func (s *Store) EarliestDelivery(ctx context.Context) (Time, error) {
	var ts []Time
	err := s.db.SelectContext(ctx, &ts, `SELECT next_attempt_at FROM webhook_deliveries WHERE status = 'pending' ORDER BY next_attempt_at LIMIT 1`)
	if err != nil {
		return Time{}, fmt.Errorf("store: earliest webhook delivery: %w", err)
	}
	if len(ts) == 0 {
		return Time{}, nil
	}
	return ts[0], nil
}

// webhookPayload is the JSON body of a delivery.
type webhookPayload struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt string          `json:"created_at"`
	Org       string          `json:"org"`
	Data      json.RawMessage `json:"data"`
}

// eventData builds a webhook payload's data from an event: the Detail when
// it is a JSON object (message.* and recipient.suppressed), otherwise the
// subject's name ({"domain": NAME} or {"email": EMAIL}) and the detail text.
func eventData(ev Event) json.RawMessage {
	if d := strings.TrimSpace(ev.Detail); strings.HasPrefix(d, "{") && json.Valid([]byte(d)) {
		return json.RawMessage(d)
	}
	m := map[string]string{}
	kind, name, _ := strings.Cut(ev.Subject, ":")
	switch kind {
	case "domain":
		m["domain"] = name
	case "address":
		m["email"] = name
	default:
		m["subject"] = ev.Subject
	}
	if ev.Detail != "" {
		m["detail"] = ev.Detail
	}
	b, _ := json.Marshal(m)
	return b
}

// enqueueWebhooks inserts one delivery per webhook of the event's
// organization subscribed to its kind. Without webhooks it costs one
// indexed query.
func enqueueWebhooks(ctx context.Context, tx *sqlx.Tx, ev Event) error {
	if !IsWebhookEvent(ev.Kind) || ev.OrgID == "" {
		return nil
	}
	var ws []Webhook
	if err := tx.SelectContext(ctx, &ws, tx.Rebind(`SELECT `+webhookCols+` FROM webhooks WHERE org_id = ?`), ev.OrgID); err != nil {
		return fmt.Errorf("store: webhooks of event: %w", err)
	}
	if len(ws) == 0 {
		return nil
	}
	var org string
	if err := tx.GetContext(ctx, &org, tx.Rebind(`SELECT name FROM orgs WHERE id = ?`), ev.OrgID); err != nil {
		org = ev.OrgID
	}
	at := ev.At
	if at.IsZero() {
		at = At(time.Now())
	}
	for _, w := range ws {
		subscribed := false
		for _, k := range w.EventList() {
			if k == ev.Kind {
				subscribed = true
			}
		}
		if !subscribed {
			continue
		}
		id := NewID()
		body, err := json.Marshal(webhookPayload{ID: id, Type: ev.Kind, CreatedAt: at.UTC().Format(time.RFC3339), Org: org, Data: eventData(ev)})
		if err != nil {
			return fmt.Errorf("store: webhook payload: %w", err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO webhook_deliveries (id, webhook_id, org_id, event, payload, created_at, next_attempt_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`), id, w.ID, ev.OrgID, ev.Kind, string(body), at, at); err != nil {
			return fmt.Errorf("store: insert webhook delivery: %w", err)
		}
	}
	return nil
}
