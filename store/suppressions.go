package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Suppression reasons.
const (
	ReasonBounce    = "bounce"
	ReasonComplaint = "complaint"
	ReasonManual    = "manual"
)

// Suppression is one entry of an organization's suppression list. Deleted
// rows are tombstones, returned only by SuppressionChanges.
type Suppression struct {
	ID         string `db:"id"`
	OrgID      string `db:"org_id"`
	Email      string `db:"email"`
	Reason     string `db:"reason"`
	Status     string `db:"status"`
	Diagnostic string `db:"diagnostic"`
	MessageID  string `db:"message_id"`
	FirstSeen  Time   `db:"first_seen"`
	LastSeen   Time   `db:"last_seen"`
	Count      int64  `db:"count"`
	ExpiresAt  Time   `db:"expires_at"` // zero = never
	Seq        int64  `db:"seq"`
	Deleted    bool   `db:"deleted"`
}

const suppressionCols = `id, org_id, email, reason, status, diagnostic, message_id, first_seen, last_seen, count, expires_at, seq, deleted`

// Feedback is one bounce or complaint about a recipient.
type Feedback struct {
	OrgID      string
	Email      string // normalized by the caller
	Domain     string // sending domain, for the event detail
	MessageID  string
	Status     string // e.g. "5.1.1"
	Diagnostic string
	At         time.Time
}

// SuppressionRules are the config's [suppression] rules.
type SuppressionRules struct {
	SoftLimit  int           // soft bounces within SoftWindow that suppress
	SoftWindow time.Duration //
	TTL        time.Duration // 0 = never expires
}

func nextSuppressionSeq(ctx context.Context, tx *sqlx.Tx) (int64, error) {
	var v int64
	if err := tx.GetContext(ctx, &v, `UPDATE suppression_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq`); err != nil {
		return 0, fmt.Errorf("store: suppression seq: %w", err)
	}
	return v, nil
}

func suppressionEvent(ctx context.Context, tx *sqlx.Tx, kind, reason string, f Feedback) error {
	detail, err := json.Marshal(map[string]string{"email": f.Email, "reason": reason, "status": f.Status,
		"diagnostic": f.Diagnostic, "message_id": f.MessageID, "domain": f.Domain})
	if err != nil {
		return fmt.Errorf("store: event detail: %w", err)
	}
	return addEvent(ctx, tx, Event{OrgID: f.OrgID, Subject: f.Email, Kind: kind, Detail: string(detail), At: At(f.At)})
}

// RecordUnattributedComplaint writes the message.complained event of a
// complaint that names no recipient (feedback loops that redact it):
// nothing is suppressed, and the organization can still tell which
// message drew it from message_id. f.Email is empty.
func (s *Store) RecordUnattributedComplaint(ctx context.Context, f Feedback) error {
	if f.At.IsZero() {
		f.At = time.Now()
	}
	f.Email = ""
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		return suppressionEvent(ctx, tx, "message.complained", ReasonComplaint, f)
	})
}

// RecordFeedback applies a bounce (hard or soft) or a complaint under
// rules and reports whether the address became suppressed now. Events
// message.bounced / message.complained and, when it became suppressed,
// recipient.suppressed are written in the same transaction.
func (s *Store) RecordFeedback(ctx context.Context, f Feedback, kind string, rules SuppressionRules) (bool, error) {
	if f.At.IsZero() {
		f.At = time.Now()
	}
	reason := ReasonBounce
	evKind := "message.bounced"
	if kind == "complaint" {
		reason, evKind = ReasonComplaint, "message.complained"
	}
	var now bool
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := suppressionEvent(ctx, tx, evKind, reason, f); err != nil {
			return err
		}
		if kind == "soft" {
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO soft_bounces (org_id, email, at) VALUES (?, ?, ?)`), f.OrgID, f.Email, At(f.At)); err != nil {
				return fmt.Errorf("store: soft bounce: %w", err)
			}
			var n int
			if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT COUNT(*) FROM soft_bounces WHERE org_id = ? AND email = ? AND at > ?`),
				f.OrgID, f.Email, At(f.At.Add(-rules.SoftWindow))); err != nil {
				return fmt.Errorf("store: soft bounces: %w", err)
			}
			if rules.SoftLimit <= 0 || n < rules.SoftLimit {
				return nil
			}
		}
		var cur Suppression
		err := tx.GetContext(ctx, &cur, tx.Rebind(`SELECT `+suppressionCols+` FROM suppressions WHERE org_id = ? AND email = ?`), f.OrgID, f.Email)
		exists := err == nil
		if err != nil && notFound(err) != ErrNotFound {
			return fmt.Errorf("store: suppression: %w", err)
		}
		seq, err := nextSuppressionSeq(ctx, tx)
		if err != nil {
			return err
		}
		var exp Time
		if rules.TTL > 0 {
			exp = At(f.At.Add(rules.TTL))
		}
		active := exists && !cur.Deleted && (cur.ExpiresAt.IsZero() || cur.ExpiresAt.After(f.At))
		if active {
			if cur.Reason == ReasonManual {
				exp = Time{}
				reason = ReasonManual
			}
			_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE suppressions SET reason = ?, status = ?, diagnostic = ?, message_id = ?,
				last_seen = ?, count = count + 1, expires_at = ?, seq = ? WHERE id = ?`),
				reason, f.Status, f.Diagnostic, f.MessageID, At(f.At), exp, seq, cur.ID)
		} else if exists {
			_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE suppressions SET reason = ?, status = ?, diagnostic = ?, message_id = ?,
				first_seen = ?, last_seen = ?, count = 1, expires_at = ?, seq = ?, deleted = FALSE WHERE id = ?`),
				reason, f.Status, f.Diagnostic, f.MessageID, At(f.At), At(f.At), exp, seq, cur.ID)
		} else {
			_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO suppressions (`+suppressionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, FALSE)`),
				NewID(), f.OrgID, f.Email, reason, f.Status, f.Diagnostic, f.MessageID, At(f.At), At(f.At), exp, seq)
		}
		if err != nil {
			return fmt.Errorf("store: suppress: %w", err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM soft_bounces WHERE org_id = ? AND email = ?`), f.OrgID, f.Email); err != nil {
			return fmt.Errorf("store: soft bounces: %w", err)
		}
		if active {
			return nil
		}
		now = true
		return suppressionEvent(ctx, tx, "recipient.suppressed", reason, f)
	})
	return now, err
}

// PutSuppression adds or turns an entry into a manual one (never expires)
// and reports whether it was created.
func (s *Store) PutSuppression(ctx context.Context, orgID, email string, at time.Time) (Suppression, bool, error) {
	var created bool
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		seq, err := nextSuppressionSeq(ctx, tx)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE suppressions SET reason = 'manual', expires_at = NULL, seq = ?,
			first_seen = CASE WHEN deleted THEN ? ELSE first_seen END, last_seen = ?, deleted = FALSE WHERE org_id = ? AND email = ? AND deleted = FALSE`),
			seq, At(at), At(at), orgID, email)
		if err := affected(res, err); err == nil {
			return nil
		} else if err != ErrNotFound {
			return fmt.Errorf("store: put suppression: %w", err)
		}
		created = true
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO suppressions (`+suppressionCols+`) VALUES (?, ?, ?, 'manual', '', '', '', ?, ?, 0, NULL, ?, FALSE)
			ON CONFLICT (org_id, email) DO UPDATE SET reason = 'manual', status = '', diagnostic = '', message_id = '',
			first_seen = excluded.first_seen, last_seen = excluded.last_seen, count = 0, expires_at = NULL, seq = excluded.seq, deleted = FALSE`),
			NewID(), orgID, email, At(at), At(at), seq)
		if err != nil {
			return fmt.Errorf("store: put suppression: %w", err)
		}
		return nil
	})
	if err != nil {
		return Suppression{}, false, err
	}
	e, err := s.Suppression(ctx, orgID, email)
	return e, created, err
}

// DeleteSuppression removes an entry (leaving a tombstone for sync);
// ErrNotFound when the organization has none for email.
func (s *Store) DeleteSuppression(ctx context.Context, orgID, email string) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		seq, err := nextSuppressionSeq(ctx, tx)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE suppressions SET deleted = TRUE, seq = ? WHERE org_id = ? AND email = ? AND deleted = FALSE`), seq, orgID, email)
		if err := affected(res, err); err != nil {
			return fmt.Errorf("store: delete suppression: %w", err)
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`DELETE FROM soft_bounces WHERE org_id = ? AND email = ?`), orgID, email)
		return err
	})
}

// Suppression returns the organization's live entry for email, or
// ErrNotFound.
func (s *Store) Suppression(ctx context.Context, orgID, email string) (Suppression, error) {
	var e Suppression
	err := s.db.GetContext(ctx, &e, s.db.Rebind(`SELECT `+suppressionCols+` FROM suppressions WHERE org_id = ? AND email = ? AND deleted = FALSE`), orgID, email)
	if err != nil {
		return Suppression{}, fmt.Errorf("store: suppression: %w", notFound(err))
	}
	return e, nil
}

// ListSuppressions pages through the organization's live entries by
// email, after the cursor email after; reason "" means any.
func (s *Store) ListSuppressions(ctx context.Context, orgID, reason, after string, limit int) ([]Suppression, error) {
	out := []Suppression{}
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT `+suppressionCols+` FROM suppressions
		WHERE org_id = ? AND deleted = FALSE AND (? = '' OR reason = ?) AND email > ? ORDER BY email LIMIT ?`), orgID, reason, reason, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list suppressions: %w", err)
	}
	return out, nil
}

// SuppressionChanges returns up to limit entries (tombstones included)
// changed after seq, by seq, for incremental sync.
func (s *Store) SuppressionChanges(ctx context.Context, since int64, limit int) ([]Suppression, error) {
	out := []Suppression{}
	err := s.rdb.SelectContext(ctx, &out, s.rdb.Rebind(`SELECT `+suppressionCols+` FROM suppressions WHERE seq > ? ORDER BY seq LIMIT ?`), since, limit)
	if err != nil {
		return nil, fmt.Errorf("store: suppression changes: %w", err)
	}
	return out, nil
}

// ExpireSuppressions tombstones entries whose expiry has passed and drops
// soft bounces older than window; it returns how many entries expired.
func (s *Store) ExpireSuppressions(ctx context.Context, now time.Time, window time.Duration) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var ids []string
		if err := tx.SelectContext(ctx, &ids, tx.Rebind(`SELECT id FROM suppressions WHERE deleted = FALSE AND expires_at IS NOT NULL AND expires_at <= ?`), At(now)); err != nil {
			return fmt.Errorf("store: expire suppressions: %w", err)
		}
		for _, id := range ids {
			seq, err := nextSuppressionSeq(ctx, tx)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE suppressions SET deleted = TRUE, seq = ? WHERE id = ?`), seq, id); err != nil {
				return fmt.Errorf("store: expire suppression: %w", err)
			}
		}
		n = int64(len(ids))
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM soft_bounces WHERE at <= ?`), At(now.Add(-window))); err != nil {
			return fmt.Errorf("store: expire soft bounces: %w", err)
		}
		return nil
	})
	return n, err
}
