package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// Org is an organization: the tenant that owns keys, accounts and domains.
type Org struct {
	ID            string `db:"id"`
	Name          string `db:"name"`
	SandboxDomain string `db:"sandbox_domain"`
	CreatedAt     Time   `db:"created_at"`
}

// APIKey is an organization's admin API key; only its hash is stored.
type APIKey struct {
	ID        string `db:"id"`
	OrgID     string `db:"org_id"`
	Hash      string `db:"hash"`
	CreatedAt Time   `db:"created_at"`
}

// Account is an SMTP sub-account; only a hash of its password is stored.
type Account struct {
	ID           string `db:"id"`
	OrgID        string `db:"org_id"`
	Name         string `db:"name"`
	Username     string `db:"username"`
	PasswordHash string `db:"password_hash"`
	CreatedAt    Time   `db:"created_at"`
	UpdatedAt    Time   `db:"updated_at"`
}

// CreateOrg inserts org together with its sandbox domain (which must have
// OrgID set to org.ID) and an event. A duplicate name is ErrConflict.
func (s *Store) CreateOrg(ctx context.Context, org Org, sandbox Domain) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO orgs (id, name, sandbox_domain, created_at) VALUES (?, ?, ?, ?)`),
			org.ID, org.Name, org.SandboxDomain, org.CreatedAt)
		if err != nil {
			if isUnique(err) {
				return ErrConflict
			}
			return fmt.Errorf("store: insert org: %w", err)
		}
		if err := insertDomain(ctx, tx, sandbox, false); err != nil {
			return err
		}
		if err := addEvent(ctx, tx, Event{OrgID: org.ID, Subject: "org", Kind: "org.created", Detail: org.Name, At: org.CreatedAt}); err != nil {
			return err
		}
		return bump(ctx, tx, org.ID, true)
	})
}

// OrgByName returns the organization called name.
func (s *Store) OrgByName(ctx context.Context, name string) (Org, error) {
	var o Org
	err := s.db.GetContext(ctx, &o, s.db.Rebind(`SELECT id, name, sandbox_domain, created_at FROM orgs WHERE name = ?`), name)
	if err != nil {
		return Org{}, fmt.Errorf("store: org %q: %w", name, notFound(err))
	}
	return o, nil
}

// OrgByID returns the organization with the given id.
func (s *Store) OrgByID(ctx context.Context, id string) (Org, error) {
	var o Org
	err := s.db.GetContext(ctx, &o, s.db.Rebind(`SELECT id, name, sandbox_domain, created_at FROM orgs WHERE id = ?`), id)
	if err != nil {
		return Org{}, fmt.Errorf("store: org id %q: %w", id, notFound(err))
	}
	return o, nil
}

// ListOrgs returns every organization, by name.
func (s *Store) ListOrgs(ctx context.Context) ([]Org, error) {
	orgs := []Org{}
	if err := s.db.SelectContext(ctx, &orgs, `SELECT id, name, sandbox_domain, created_at FROM orgs ORDER BY name`); err != nil {
		return nil, fmt.Errorf("store: list orgs: %w", err)
	}
	return orgs, nil
}

// DeleteOrg removes an organization and, by cascade, everything it owns.
func (s *Store) DeleteOrg(ctx context.Context, id string) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		// Children first: not every SQLite build enforces cascades the same
		// way under concurrent schema use, and being explicit costs little.
		for _, q := range []string{
			`DELETE FROM domain_grants WHERE domain_id IN (SELECT id FROM domains WHERE org_id = ?)`,
			`DELETE FROM domains WHERE org_id = ?`,
			`DELETE FROM smtp_accounts WHERE org_id = ?`,
			`DELETE FROM api_keys WHERE org_id = ?`,
			`DELETE FROM addresses WHERE org_id = ?`,
			`DELETE FROM events WHERE org_id = ?`,
			`DELETE FROM sandbox_counts WHERE org_id = ?`,
			`DELETE FROM sending_limits WHERE org_id = ?`,
			`DELETE FROM limit_counters WHERE org_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, tx.Rebind(q), id); err != nil {
				return fmt.Errorf("store: delete org: %w", err)
			}
		}
		if err := affected(tx.ExecContext(ctx, tx.Rebind(`DELETE FROM orgs WHERE id = ?`), id)); err != nil {
			return fmt.Errorf("store: delete org: %w", err)
		}
		return bump(ctx, tx, id, true)
	})
}

// CreateAPIKey stores an organization key (its hash).
func (s *Store) CreateAPIKey(ctx context.Context, k APIKey) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO api_keys (id, org_id, hash, created_at) VALUES (?, ?, ?, ?)`),
		k.ID, k.OrgID, k.Hash, k.CreatedAt)
	if err != nil {
		return fmt.Errorf("store: insert api key: %w", err)
	}
	return nil
}

// APIKeyByID returns the key with the given id.
func (s *Store) APIKeyByID(ctx context.Context, id string) (APIKey, error) {
	var k APIKey
	err := s.db.GetContext(ctx, &k, s.db.Rebind(`SELECT id, org_id, hash, created_at FROM api_keys WHERE id = ?`), id)
	if err != nil {
		return APIKey{}, fmt.Errorf("store: api key: %w", notFound(err))
	}
	return k, nil
}

// APIKeyInOrg returns, in one query, the key id (ErrNotFound when there
// is none) and the organization called orgName, for a request made with
// that key in that organization; found is false when no organization has
// that name. The caller checks the key's hash and that the organization
// is the key's.
func (s *Store) APIKeyInOrg(ctx context.Context, id, orgName string) (k APIKey, o Org, found bool, err error) {
	var oid, oname, osandbox sql.NullString
	err = s.db.QueryRowxContext(ctx, s.db.Rebind(`SELECT k.id, k.org_id, k.hash, k.created_at, o.id, o.name, o.sandbox_domain, o.created_at
		FROM api_keys k LEFT JOIN orgs o ON o.name = ? WHERE k.id = ?`), orgName, id).
		Scan(&k.ID, &k.OrgID, &k.Hash, &k.CreatedAt, &oid, &oname, &osandbox, &o.CreatedAt)
	if err != nil {
		return APIKey{}, Org{}, false, fmt.Errorf("store: api key: %w", notFound(err))
	}
	if !oid.Valid {
		return k, Org{}, false, nil
	}
	o.ID, o.Name, o.SandboxDomain = oid.String, oname.String, osandbox.String
	return k, o, true, nil
}

// DeleteAPIKey revokes the key id of organization orgID.
func (s *Store) DeleteAPIKey(ctx context.Context, orgID, id string) error {
	err := affected(s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM api_keys WHERE org_id = ? AND id = ?`), orgID, id))
	if err != nil {
		return fmt.Errorf("store: delete api key: %w", err)
	}
	return nil
}

// CreateAccount stores an SMTP account. A duplicate name in the
// organization (or a duplicate username) is ErrConflict.
func (s *Store) CreateAccount(ctx context.Context, a Account) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO smtp_accounts (id, org_id, name, username, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			a.ID, a.OrgID, a.Name, a.Username, a.PasswordHash, a.CreatedAt, a.UpdatedAt)
		if err != nil {
			if isUnique(err) {
				return ErrConflict
			}
			return fmt.Errorf("store: insert account: %w", err)
		}
		return bump(ctx, tx, a.OrgID, false)
	})
}

const accountCols = `id, org_id, name, username, password_hash, created_at, updated_at`

// ListAccounts returns the organization's accounts, by name.
func (s *Store) ListAccounts(ctx context.Context, orgID string) ([]Account, error) {
	accts := []Account{}
	err := s.db.SelectContext(ctx, &accts, s.db.Rebind(`SELECT `+accountCols+` FROM smtp_accounts WHERE org_id = ? ORDER BY name`), orgID)
	if err != nil {
		return nil, fmt.Errorf("store: list accounts: %w", err)
	}
	return accts, nil
}

// AllAccounts returns every account of every organization.
func (s *Store) AllAccounts(ctx context.Context) ([]Account, error) {
	accts := []Account{}
	if err := s.db.SelectContext(ctx, &accts, `SELECT `+accountCols+` FROM smtp_accounts`); err != nil {
		return nil, fmt.Errorf("store: all accounts: %w", err)
	}
	return accts, nil
}

// AccountByName returns the organization's account called name.
func (s *Store) AccountByName(ctx context.Context, orgID, name string) (Account, error) {
	var a Account
	err := s.db.GetContext(ctx, &a, s.db.Rebind(`SELECT `+accountCols+` FROM smtp_accounts WHERE org_id = ? AND name = ?`), orgID, name)
	if err != nil {
		return Account{}, fmt.Errorf("store: account %q: %w", name, notFound(err))
	}
	return a, nil
}

// SetAccountPassword replaces the password hash of the named account.
func (s *Store) SetAccountPassword(ctx context.Context, orgID, name, hash string, at Time) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		err := affected(tx.ExecContext(ctx, tx.Rebind(`UPDATE smtp_accounts SET password_hash = ?, updated_at = ? WHERE org_id = ? AND name = ?`),
			hash, at, orgID, name))
		if err != nil {
			return fmt.Errorf("store: rotate password of %q: %w", name, err)
		}
		return bump(ctx, tx, orgID, false)
	})
}

// DeleteAccount removes the named account and its domain grants.
func (s *Store) DeleteAccount(ctx context.Context, orgID, name string) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM domain_grants WHERE account_id IN (SELECT id FROM smtp_accounts WHERE org_id = ? AND name = ?)`), orgID, name)
		if err != nil {
			return fmt.Errorf("store: delete grants of %q: %w", name, err)
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`DELETE FROM sending_limits WHERE account_id IN (SELECT id FROM smtp_accounts WHERE org_id = ? AND name = ?)`), orgID, name)
		if err != nil {
			return fmt.Errorf("store: delete limits of %q: %w", name, err)
		}
		if err := affected(tx.ExecContext(ctx, tx.Rebind(`DELETE FROM smtp_accounts WHERE org_id = ? AND name = ?`), orgID, name)); err != nil {
			return fmt.Errorf("store: delete account %q: %w", name, err)
		}
		return bump(ctx, tx, orgID, false)
	})
}
