package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/sendergate/sendergate/limits"
)

// LimitRow is a sending limit set over the API: recipients per minute,
// hour and day (0 = none) of an organization (AccountID "") or of one of
// its accounts.
type LimitRow struct {
	OrgID     string `db:"org_id"`
	AccountID string `db:"account_id"`
	PerMinute int64  `db:"per_minute"`
	PerHour   int64  `db:"per_hour"`
	PerDay    int64  `db:"per_day"`
	UpdatedAt Time   `db:"updated_at"`
}

const limitCols = `org_id, account_id, per_minute, per_hour, per_day, updated_at`

// Limits returns the limits stored for an organization (accountID "") or
// one of its accounts; ErrNotFound when none were set.
func (s *Store) Limits(ctx context.Context, orgID, accountID string) (LimitRow, error) {
	var r LimitRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+limitCols+` FROM sending_limits WHERE org_id = ? AND account_id = ?`), orgID, accountID)
	if err != nil {
		return LimitRow{}, fmt.Errorf("store: limits: %w", notFound(err))
	}
	return r, nil
}

// OrgLimitRows returns the limits stored for an organization and for each
// of its accounts that has its own.
func (s *Store) OrgLimitRows(ctx context.Context, orgID string) ([]LimitRow, error) {
	rows := []LimitRow{}
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+limitCols+` FROM sending_limits WHERE org_id = ?`), orgID); err != nil {
		return nil, fmt.Errorf("store: limits: %w", err)
	}
	return rows, nil
}

// SetLimits stores r (replacing what was stored for its organization or
// account), records ev and bumps the state version, so every instance
// applies the limits within a poll interval. An account that is not the
// organization's is ErrNotFound.
func (s *Store) SetLimits(ctx context.Context, r LimitRow, ev Event) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		if r.AccountID != "" {
			var n int
			if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT COUNT(*) FROM smtp_accounts WHERE id = ? AND org_id = ?`), r.AccountID, r.OrgID); err != nil {
				return fmt.Errorf("store: set limits: %w", err)
			}
			if n == 0 {
				return fmt.Errorf("store: set limits: account: %w", ErrNotFound)
			}
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO sending_limits (`+limitCols+`) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (org_id, account_id) DO UPDATE SET per_minute = excluded.per_minute, per_hour = excluded.per_hour,
			per_day = excluded.per_day, updated_at = excluded.updated_at`),
			r.OrgID, r.AccountID, r.PerMinute, r.PerHour, r.PerDay, r.UpdatedAt)
		if err != nil {
			return fmt.Errorf("store: set limits: %w", err)
		}
		if err := addEvent(ctx, tx, ev); err != nil {
			return err
		}
		return bump(ctx, tx, r.OrgID, false)
	})
}

var _ limits.Store = (*Store)(nil)

// Exchange implements limits.Store: the ops in one transaction, each on
// its counter row (created when missing), locked by its UPDATE until the
// commit, so the lease computed from the row's used and leased holds.
func (s *Store) Exchange(ctx context.Context, ops []limits.Op) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		for i := range ops {
			if err := exchangeOp(ctx, tx, &ops[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func exchangeOp(ctx context.Context, tx *sqlx.Tx, op *limits.Op) error {
	k := op.Key
	key := []any{k.Kind.String(), k.ID, k.Window.String(), k.Start}
	const where = ` WHERE scope = ? AND scope_id = ? AND win = ? AND win_start = ?`
	var row struct {
		Used    int64 `db:"used"`
		Leased  int64 `db:"leased"`
		Reached bool  `db:"reached"`
	}
	update := tx.Rebind(`UPDATE limit_counters SET used = used + ?,
		leased = CASE WHEN leased + ? < 0 THEN 0 ELSE leased + ? END, refused = refused + ?` + where + ` RETURNING used, leased, reached`)
	args := append([]any{op.Used, op.Leased, op.Leased, op.Refused}, key...)
	for attempt := 0; ; attempt++ {
		if !op.Exists || attempt > 0 {
			_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO limit_counters (scope, scope_id, win, win_start, org_id, win_end)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, scope_id, win, win_start) DO NOTHING`), append(key, op.OrgID, op.End)...)
			if err != nil {
				return fmt.Errorf("store: limit counter: %w", err)
			}
		}
		err := tx.GetContext(ctx, &row, update, args...)
		if err == nil {
			break
		}
		if notFound(err) != ErrNotFound || attempt > 0 {
			return fmt.Errorf("store: limit counter: %w", err)
		}
	}
	op.Granted = op.Grant(row.Used, row.Leased)
	if op.Granted != 0 {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE limit_counters SET leased = leased + ?`+where), append([]any{op.Granted}, key...)...); err != nil {
			return fmt.Errorf("store: lease: %w", err)
		}
	}
	op.RowUsed, op.RowLeased = row.Used, row.Leased+op.Granted
	op.FirstReached = false
	if op.Reached && !row.Reached {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE limit_counters SET reached = TRUE`+where), key...); err != nil {
			return fmt.Errorf("store: limit reached: %w", err)
		}
		op.FirstReached = true
		// Only for an organization that still exists: a counter of one
		// deleted meanwhile must not fail the whole settlement.
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO events (id, org_id, subject, kind, detail, at)
			SELECT ?, ?, 'limits', 'limit.reached', ?, CAST(? AS BIGINT) WHERE EXISTS (SELECT 1 FROM orgs WHERE id = ?)`),
			NewID(), op.OrgID, op.Event, reachedAt(op), op.OrgID)
		if err != nil {
			return fmt.Errorf("store: limit.reached event: %w", err)
		}
	}
	return nil
}

// Counters implements limits.Store.
func (s *Store) Counters(ctx context.Context, orgID string, starts limits.Starts) ([]limits.Row, error) {
	var rows []struct {
		Scope   string `db:"scope"`
		ID      string `db:"scope_id"`
		Win     string `db:"win"`
		Start   int64  `db:"win_start"`
		Used    int64  `db:"used"`
		Leased  int64  `db:"leased"`
		Refused int64  `db:"refused"`
	}
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT scope, scope_id, win, win_start, used, leased, refused
		FROM limit_counters WHERE org_id = ? AND ((win = ? AND win_start = ?) OR (win = ? AND win_start = ?) OR (win = ? AND win_start = ?))`),
		orgID, limits.Minute.String(), starts[limits.Minute], limits.Hour.String(), starts[limits.Hour], limits.Day.String(), starts[limits.Day])
	if err != nil {
		return nil, fmt.Errorf("store: limit counters: %w", err)
	}
	out := make([]limits.Row, 0, len(rows))
	for _, r := range rows {
		kind, ok1 := limits.ParseKind(r.Scope)
		win, ok2 := limits.ParseWindow(r.Win)
		if !ok1 || !ok2 {
			continue
		}
		out = append(out, limits.Row{Key: limits.Key{Kind: kind, ID: r.ID, Window: win, Start: r.Start},
			Used: r.Used, Leased: r.Leased, Refused: r.Refused})
	}
	return out, nil
}

// DeleteCounters implements limits.Store.
func (s *Store) DeleteCounters(ctx context.Context, end int64) error {
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM limit_counters WHERE win_end < ?`), end); err != nil {
		return fmt.Errorf("store: delete limit counters: %w", err)
	}
	return nil
}

// RecentEvents returns the organization's latest n events about subject,
// newest first.
func (s *Store) RecentEvents(ctx context.Context, orgID, subject string, n int) ([]Event, error) {
	evs := []Event{}
	err := s.db.SelectContext(ctx, &evs, s.db.Rebind(`SELECT id, org_id, subject, kind, detail, at FROM events
		WHERE org_id = ? AND subject = ? ORDER BY id DESC LIMIT ?`), orgID, subject, n)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	return evs, nil
}

// reachedAt is when op's limit was hit, now when it does not say.
func reachedAt(op *limits.Op) Time {
	if op.ReachedAt > 0 {
		return At(time.UnixMilli(op.ReachedAt))
	}
	return At(time.Now())
}
