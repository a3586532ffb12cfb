package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
)

// Event is one entry of an audit trail. Subject names what it is about:
// "org", "domain:NAME", "address:EMAIL".
type Event struct {
	ID      string `db:"id" json:"-"`
	OrgID   string `db:"org_id" json:"-"`
	Subject string `db:"subject" json:"subject"`
	Kind    string `db:"kind" json:"kind"`
	Detail  string `db:"detail" json:"detail,omitempty"`
	At      Time   `db:"at" json:"-"`
}

func addEvent(ctx context.Context, tx *sqlx.Tx, ev Event) error {
	return addEvents(ctx, tx, []Event{ev})
}

// addEvents records evs, in their order, with one INSERT, and queues
// their webhook deliveries.
func addEvents(ctx context.Context, tx *sqlx.Tx, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	evs = slices.Clone(evs) // ids are filled in; the caller's stay as they were
	var q strings.Builder
	q.WriteString(`INSERT INTO events (id, org_id, subject, kind, detail, at) VALUES `)
	args := make([]any, 0, 6*len(evs))
	for i := range evs {
		if evs[i].ID == "" {
			evs[i].ID = NewID()
		}
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?)")
		ev := evs[i]
		args = append(args, ev.ID, ev.OrgID, ev.Subject, ev.Kind, ev.Detail, ev.At)
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(q.String()), args...); err != nil {
		return fmt.Errorf("store: insert event: %w", err)
	}
	for _, ev := range evs {
		if err := enqueueWebhooks(ctx, tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// AddEvent records one event on its own.
func (s *Store) AddEvent(ctx context.Context, ev Event) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error { return addEvent(ctx, tx, ev) })
}

// Events returns the organization's events about subject, oldest first.
func (s *Store) Events(ctx context.Context, orgID, subject string) ([]Event, error) {
	evs := []Event{}
	err := s.db.SelectContext(ctx, &evs, s.db.Rebind(`SELECT id, org_id, subject, kind, detail, at FROM events WHERE org_id = ? AND subject = ? ORDER BY id`), orgID, subject)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	return evs, nil
}

// SystemKey returns the shared secret called name, creating it with gen the
// first time. Concurrent first calls from several instances agree on one
// value: the insert that loses the race reads the winner's.
func (s *Store) SystemKey(ctx context.Context, name string, gen func() (string, error)) (string, error) {
	var v string
	err := s.db.GetContext(ctx, &v, s.db.Rebind(`SELECT value FROM system_keys WHERE name = ?`), name)
	if err == nil {
		return v, nil
	}
	if notFound(err) != ErrNotFound {
		return "", fmt.Errorf("store: system key %q: %w", name, err)
	}
	nv, err := gen()
	if err != nil {
		return "", fmt.Errorf("store: generate system key %q: %w", name, err)
	}
	_, err = s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO system_keys (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`), name, nv)
	if err != nil {
		return "", fmt.Errorf("store: save system key %q: %w", name, err)
	}
	if err := s.db.GetContext(ctx, &v, s.db.Rebind(`SELECT value FROM system_keys WHERE name = ?`), name); err != nil {
		return "", fmt.Errorf("store: system key %q: %w", name, err)
	}
	return v, nil
}
