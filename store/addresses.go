package store

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// Address is a mailbox an organization authorizes by confirmation email.
// Only a hash of the current confirmation token is stored.
type Address struct {
	ID             string `db:"id"`
	OrgID          string `db:"org_id"`
	Email          string `db:"email"`
	Domain         string `db:"domain"`
	Status         string `db:"status"` // pending | confirmed | expired
	TokenHash      string `db:"token_hash"`
	TokenExpiresAt Time   `db:"token_expires_at"`
	ResendWindow   Time   `db:"resend_window"`
	ResendCount    int    `db:"resend_count"`
	CreatedAt      Time   `db:"created_at"`
	ConfirmedAt    Time   `db:"confirmed_at"`
}

const addressCols = `id, org_id, email, domain, status, token_hash, token_expires_at, resend_window, resend_count, created_at, confirmed_at`

// CreateAddress stores a new address and its event; a duplicate email in
// the organization is ErrConflict.
func (s *Store) CreateAddress(ctx context.Context, a Address, ev Event) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.NamedExecContext(ctx, `INSERT INTO addresses (`+addressCols+`) VALUES (:id, :org_id, :email, :domain, :status,
			:token_hash, :token_expires_at, :resend_window, :resend_count, :created_at, :confirmed_at)`, a)
		if err != nil {
			if isUnique(err) {
				return ErrConflict
			}
			return fmt.Errorf("store: insert address: %w", err)
		}
		return addEvent(ctx, tx, ev)
	})
}

// AddressByEmail returns the organization's address.
func (s *Store) AddressByEmail(ctx context.Context, orgID, email string) (Address, error) {
	var a Address
	err := s.db.GetContext(ctx, &a, s.db.Rebind(`SELECT `+addressCols+` FROM addresses WHERE org_id = ? AND email = ?`), orgID, email)
	if err != nil {
		return Address{}, fmt.Errorf("store: address %q: %w", email, notFound(err))
	}
	return a, nil
}

// AddressByTokenHash returns the address whose current token hashes to h.
func (s *Store) AddressByTokenHash(ctx context.Context, h string) (Address, error) {
	var a Address
	err := s.db.GetContext(ctx, &a, s.db.Rebind(`SELECT `+addressCols+` FROM addresses WHERE token_hash = ?`), h)
	if err != nil {
		return Address{}, fmt.Errorf("store: address by token: %w", notFound(err))
	}
	return a, nil
}

// ListAddresses returns the organization's addresses, by email.
func (s *Store) ListAddresses(ctx context.Context, orgID string) ([]Address, error) {
	as := []Address{}
	err := s.db.SelectContext(ctx, &as, s.db.Rebind(`SELECT `+addressCols+` FROM addresses WHERE org_id = ? ORDER BY email`), orgID)
	if err != nil {
		return nil, fmt.Errorf("store: list addresses: %w", err)
	}
	return as, nil
}

// ConfirmedAddresses returns every confirmed address of every organization.
func (s *Store) ConfirmedAddresses(ctx context.Context) ([]Address, error) {
	as := []Address{}
	if err := s.db.SelectContext(ctx, &as, `SELECT `+addressCols+` FROM addresses WHERE status = 'confirmed'`); err != nil {
		return nil, fmt.Errorf("store: confirmed addresses: %w", err)
	}
	return as, nil
}

// UpdateAddress saves a's status, token and resend bookkeeping, provided
// the stored token hash and status still equal prev's (single use under
// concurrency: a second confirmation of the same token changes nothing and
// gets ErrConflict).
func (s *Store) UpdateAddress(ctx context.Context, prev, a Address, ev *Event) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		err := affected(tx.ExecContext(ctx, tx.Rebind(`UPDATE addresses SET status = ?, token_hash = ?, token_expires_at = ?,
			resend_window = ?, resend_count = ?, confirmed_at = ? WHERE id = ? AND token_hash = ? AND status = ?`),
			a.Status, a.TokenHash, a.TokenExpiresAt, a.ResendWindow, a.ResendCount, a.ConfirmedAt, a.ID, prev.TokenHash, prev.Status))
		if err == ErrNotFound {
			return ErrConflict
		}
		if err != nil {
			return fmt.Errorf("store: update address: %w", err)
		}
		if ev != nil {
			if err := addEvent(ctx, tx, *ev); err != nil {
				return err
			}
		}
		return bump(ctx, tx, a.OrgID, false)
	})
}

// DeleteAddress removes the organization's address.
func (s *Store) DeleteAddress(ctx context.Context, orgID, email string, ev Event) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := affected(tx.ExecContext(ctx, tx.Rebind(`DELETE FROM addresses WHERE org_id = ? AND email = ?`), orgID, email)); err != nil {
			return fmt.Errorf("store: delete address: %w", err)
		}
		if err := addEvent(ctx, tx, ev); err != nil {
			return err
		}
		return bump(ctx, tx, orgID, false)
	})
}

// IncrSandbox counts n sandbox recipients for orgID on day (YYYY-MM-DD,
// UTC) if the day's count plus n stays within limit; it reports whether
// they were counted (and so may be sent). It is one atomic statement, safe
// across instances: a message is admitted whole or not at all.
func (s *Store) IncrSandbox(ctx context.Context, orgID, day string, n, limit int) (bool, error) {
	if limit <= 0 || n <= 0 || n > limit {
		return false, nil
	}
	var c int64
	err := s.db.GetContext(ctx, &c, s.db.Rebind(`INSERT INTO sandbox_counts (org_id, day, count) VALUES (?, ?, ?)
		ON CONFLICT (org_id, day) DO UPDATE SET count = sandbox_counts.count + excluded.count
		WHERE sandbox_counts.count + excluded.count <= ?
		RETURNING count`), orgID, day, n, limit)
	if err != nil {
		if notFound(err) == ErrNotFound {
			return false, nil
		}
		return false, fmt.Errorf("store: sandbox counter: %w", err)
	}
	return true, nil
}

// SandboxCount returns how many sandbox recipients orgID sent to on day.
func (s *Store) SandboxCount(ctx context.Context, orgID, day string) (int64, error) {
	var n int64
	err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT count FROM sandbox_counts WHERE org_id = ? AND day = ?`), orgID, day)
	if err != nil {
		if notFound(err) == ErrNotFound {
			return 0, nil
		}
		return 0, fmt.Errorf("store: sandbox count: %w", err)
	}
	return n, nil
}
