package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// The background verification queue. Each domain's next_check_at (indexed)
// says when the checker next looks at it; NULL is never. A checker leases
// due rows by moving their next_check_at to the end of the lease in the
// transaction that selects them (on PostgreSQL with FOR UPDATE SKIP LOCKED,
// so instances sharing the database take disjoint rows without waiting on
// each other; SQLite has a single writer). Saving the check's result
// (UpdateDomainCheck) or RescheduleCheck ends the lease; a lease that runs
// out, because its instance died, makes the row due again.

// checkCols are the columns a check reads: no private key; the token,
// selector, public key and DMARC fields say what the provider zone serves
// at the CNAMEs' targets, which the check compares.
const checkCols = `id, org_id, name, sandbox, token, status, dkim_selector, dkim_txt, dmarc_policy, dmarc_rua, dmarc_pct,
	records, history, created_at, verified_at, last_checked_at, first_miss_at, next_check_at`

// EarliestCheck returns the earliest next_check_at of any domain, or the
// zero Time when no check is planned. It reads one index entry.
func (s *Store) EarliestCheck(ctx context.Context) (Time, error) {
	var t Time
	err := s.db.GetContext(ctx, &t, `SELECT next_check_at FROM domains WHERE next_check_at IS NOT NULL ORDER BY next_check_at LIMIT 1`)
	if errors.Is(err, sql.ErrNoRows) {
		return Time{}, nil
	}
	if err != nil {
		return Time{}, fmt.Errorf("store: earliest domain check: %w", err)
	}
	return t, nil
}

// LeaseDueChecks takes up to limit domains whose next check is at or before
// now, earliest first, and moves their next check to until, so that no
// other checker takes them before then. The domains hold only the columns a
// check reads (DKIMKey and Token are empty), and NextCheckAt is the time
// each was due, for a caller that gives a lease back (RescheduleCheck).
func (s *Store) LeaseDueChecks(ctx context.Context, now, until time.Time, limit int) ([]Domain, error) {
	var ds []Domain
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		ds = nil
		q := `SELECT ` + checkCols + ` FROM domains WHERE next_check_at <= ? ORDER BY next_check_at LIMIT ?`
		if s.dialect == "postgres" {
			q += ` FOR UPDATE SKIP LOCKED`
		}
		if err := tx.SelectContext(ctx, &ds, tx.Rebind(q), At(now), limit); err != nil {
			return fmt.Errorf("store: due domain checks: %w", err)
		}
		if len(ds) == 0 {
			return nil
		}
		ids := make([]string, len(ds))
		for i, d := range ds {
			ids[i] = d.ID
		}
		q, args, err := sqlx.In(`UPDATE domains SET next_check_at = ? WHERE id IN (?)`, At(until), ids)
		if err != nil {
			return fmt.Errorf("store: lease domain checks: %w", err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
			return fmt.Errorf("store: lease domain checks: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ds, nil
}

// RescheduleCheck ends the lease a checker holds on a domain until lease
// without a check result: the next check becomes next (zero: never). It
// reports false, changing nothing, when the row no longer holds that lease
// (it was checked through the API meanwhile, deleted, or leased anew).
func (s *Store) RescheduleCheck(ctx context.Context, id string, lease, next Time) (bool, error) {
	err := affected(s.db.ExecContext(ctx, s.db.Rebind(`UPDATE domains SET next_check_at = ? WHERE id = ? AND next_check_at = ?`), next, id, lease))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: reschedule check of domain %s: %w", id, err)
	}
	return true, nil
}
