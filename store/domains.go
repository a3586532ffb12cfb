package store

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// Domain is a sending domain of an organization, including the sandbox
// domain every organization gets. DKIMKey is the PEM private key: it never
// leaves the server. Records is the JSON array of generated records and
// their last check results.
type Domain struct {
	ID            string `db:"id"`
	OrgID         string `db:"org_id"`
	Name          string `db:"name"`
	Sandbox       bool   `db:"sandbox"`
	Token         string `db:"token"`
	Status        string `db:"status"`
	ReturnPath    string `db:"return_path"`
	Tracking      string `db:"tracking"`
	DKIMSelector  string `db:"dkim_selector"`
	DKIMAlgorithm string `db:"dkim_algorithm"`
	DKIMKey       string `db:"dkim_key"`
	// DKIMTXT is the public key's TXT value (v=DKIM1; k=...; p=...),
	// computed from DKIMKey when the domain is created.
	DKIMTXT       string `db:"dkim_txt"`
	DMARCPolicy   string `db:"dmarc_policy"`
	DMARCRUA      string `db:"dmarc_rua"`
	DMARCPct      int    `db:"dmarc_pct"`
	Restricted    bool   `db:"restricted"`
	Records       string `db:"records"`
	History       string `db:"history"`
	CreatedAt     Time   `db:"created_at"`
	VerifiedAt    Time   `db:"verified_at"`
	LastCheckedAt Time   `db:"last_checked_at"`
	FirstMissAt   Time   `db:"first_miss_at"`
	// NextCheckAt is when the background checker next looks at the
	// domain; zero for never (see checkqueue.go).
	NextCheckAt Time `db:"next_check_at"`
}

// Grant allows one account to send as one restricted domain.
type Grant struct {
	DomainID  string `db:"domain_id"`
	AccountID string `db:"account_id"`
}

const domainCols = `id, org_id, name, sandbox, token, status, return_path, tracking, dkim_selector, dkim_algorithm, dkim_key, dkim_txt,
	dmarc_policy, dmarc_rua, dmarc_pct, restricted, records, history, created_at, verified_at, last_checked_at, first_miss_at, next_check_at`

// insertDomain stores d with its key as the active key and, in the same
// INSERT, more keys of it. With guard, a name verified (or failing) in
// another organization is refused (ErrConflict) by the INSERT itself.
func insertDomain(ctx context.Context, tx *sqlx.Tx, d Domain, guard bool, more ...DKIMKey) error {
	if d.DKIMTXT == "" {
		// An unreadable key publishes nothing (the policy refuses to sign
		// with it too); it is not the store's to refuse.
		d.DKIMTXT, _ = publicTXT(d.DKIMKey)
	}
	values := `:id, :org_id, :name, :sandbox, :token, :status,
		:return_path, :tracking, :dkim_selector, :dkim_algorithm, :dkim_key, :dkim_txt, :dmarc_policy, :dmarc_rua, :dmarc_pct, :restricted,
		:records, :history, :created_at, :verified_at, :last_checked_at, :first_miss_at, :next_check_at`
	q := `INSERT INTO domains (` + domainCols + `) VALUES (` + values + `)`
	if guard {
		q = `INSERT INTO domains (` + domainCols + `) SELECT ` + values + `
			WHERE NOT EXISTS (SELECT 1 FROM domains WHERE name = :name AND org_id <> :org_id AND status IN ('verified', 'failing'))`
	}
	err := affected(tx.NamedExecContext(ctx, q, d))
	if err != nil {
		if isUnique(err) || err == ErrNotFound {
			return ErrConflict
		}
		return fmt.Errorf("store: insert domain %q: %w", d.Name, err)
	}
	// The domain's key is its first active key (dkim_keys).
	return insertKeys(ctx, tx, append([]DKIMKey{{DomainID: d.ID, Selector: d.DKIMSelector, Algorithm: d.DKIMAlgorithm, PrivateKey: d.DKIMKey,
		TXT: d.DKIMTXT, State: KeyActive, CreatedAt: d.CreatedAt, ActivatedAt: d.CreatedAt}}, more...)...)
}

// CreateDomain stores a new domain, its key as the active key, and its
// "added" event. A name already in the organization is ErrConflict.
// Registrations that delegate two selectors use CreateDomainWithNext.
func (s *Store) CreateDomain(ctx context.Context, d Domain, ev Event) error {
	return s.createDomain(ctx, d, nil, ev)
}

// CreateDomainWithNext is CreateDomain that also stores next as the
// domain's next key (published at the second selector, not signing), in
// the same transaction with its events (domain.added, dkim.next_published):
// a registration that can rotate from the start. A name verified (or
// failing) in another organization is ErrConflict too (VerifiedElsewhere,
// checked by the INSERT).
func (s *Store) CreateDomainWithNext(ctx context.Context, d Domain, next DKIMKey, ev Event, more ...Event) error {
	return s.createDomain(ctx, d, &next, append([]Event{ev}, more...)...)
}

func (s *Store) createDomain(ctx context.Context, d Domain, next *DKIMKey, evs ...Event) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var more []DKIMKey
		if next != nil {
			k := *next
			k.DomainID, k.State, k.BYOK = d.ID, KeyNext, false
			more = append(more, k)
		}
		if err := insertDomain(ctx, tx, d, next != nil, more...); err != nil {
			return err
		}
		if err := addEvents(ctx, tx, evs); err != nil {
			return err
		}
		return bump(ctx, tx, d.OrgID, true)
	})
}

// DomainByName returns the organization's domain called name.
func (s *Store) DomainByName(ctx context.Context, orgID, name string) (Domain, error) {
	var d Domain
	err := s.db.GetContext(ctx, &d, s.db.Rebind(`SELECT `+domainCols+` FROM domains WHERE org_id = ? AND name = ?`), orgID, name)
	if err != nil {
		return Domain{}, fmt.Errorf("store: domain %q: %w", name, notFound(err))
	}
	return d, nil
}

// ListDomains returns the organization's domains, by name.
func (s *Store) ListDomains(ctx context.Context, orgID string) ([]Domain, error) {
	ds := []Domain{}
	err := s.db.SelectContext(ctx, &ds, s.db.Rebind(`SELECT `+domainCols+` FROM domains WHERE org_id = ? ORDER BY name`), orgID)
	if err != nil {
		return nil, fmt.Errorf("store: list domains: %w", err)
	}
	return ds, nil
}

// AllDomains returns every domain of every organization.
func (s *Store) AllDomains(ctx context.Context) ([]Domain, error) {
	ds := []Domain{}
	if err := s.db.SelectContext(ctx, &ds, `SELECT `+domainCols+` FROM domains ORDER BY name, id`); err != nil {
		return nil, fmt.Errorf("store: all domains: %w", err)
	}
	return ds, nil
}

// VerifiedElsewhere reports whether name is verified (or failing) in an
// organization other than orgID.
func (s *Store) VerifiedElsewhere(ctx context.Context, name, orgID string) (bool, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT COUNT(*) FROM domains WHERE name = ? AND org_id <> ? AND status IN ('verified', 'failing')`), name, orgID)
	if err != nil {
		return false, fmt.Errorf("store: domain ownership of %q: %w", name, err)
	}
	return n > 0, nil
}

// UpdateDomainCheck saves the result of a verification: status, records,
// history, timestamps and the next check (which ends a checker's lease),
// plus the events it produced. prev is the domain
// as it was read before the check; when another process has changed the
// status or history since, the update is skipped and ErrConflict returned.
func (s *Store) UpdateDomainCheck(ctx context.Context, prev, d Domain, events []Event) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		err := affected(tx.ExecContext(ctx, tx.Rebind(`UPDATE domains SET status = ?, records = ?, history = ?, verified_at = ?,
			last_checked_at = ?, first_miss_at = ?, next_check_at = ? WHERE id = ? AND status = ? AND history = ?`),
			d.Status, d.Records, d.History, d.VerifiedAt, d.LastCheckedAt, d.FirstMissAt, d.NextCheckAt, d.ID, prev.Status, prev.History))
		if err == ErrNotFound || isUnique(err) {
			return ErrConflict
		}
		if err != nil {
			return fmt.Errorf("store: update domain %q: %w", d.Name, err)
		}
		if err := addEvents(ctx, tx, events); err != nil {
			return err
		}
		if prev.Status != d.Status {
			return bump(ctx, tx, d.OrgID, false)
		}
		return nil
	})
}

// SetAccess sets whether the domain is restricted and, when it is, which
// accounts (by id) are granted; the grants are replaced as a whole.
func (s *Store) SetAccess(ctx context.Context, domainID string, restricted bool, accountIDs []string, ev Event) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := affected(tx.ExecContext(ctx, tx.Rebind(`UPDATE domains SET restricted = ? WHERE id = ?`), restricted, domainID)); err != nil {
			return fmt.Errorf("store: set access: %w", err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM domain_grants WHERE domain_id = ?`), domainID); err != nil {
			return fmt.Errorf("store: clear grants: %w", err)
		}
		for _, id := range accountIDs {
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO domain_grants (domain_id, account_id) VALUES (?, ?)`), domainID, id); err != nil {
				return fmt.Errorf("store: grant: %w", err)
			}
		}
		if err := addEvent(ctx, tx, ev); err != nil {
			return err
		}
		return bump(ctx, tx, ev.OrgID, false)
	})
}

// DomainGrants returns the names of the accounts granted on a domain.
func (s *Store) DomainGrants(ctx context.Context, domainID string) ([]string, error) {
	names := []string{}
	err := s.db.SelectContext(ctx, &names, s.db.Rebind(`SELECT a.name FROM domain_grants g JOIN smtp_accounts a ON a.id = g.account_id
		WHERE g.domain_id = ? ORDER BY a.name`), domainID)
	if err != nil {
		return nil, fmt.Errorf("store: domain grants: %w", err)
	}
	return names, nil
}

// AllGrants returns every grant.
func (s *Store) AllGrants(ctx context.Context) ([]Grant, error) {
	gs := []Grant{}
	if err := s.db.SelectContext(ctx, &gs, `SELECT domain_id, account_id FROM domain_grants`); err != nil {
		return nil, fmt.Errorf("store: all grants: %w", err)
	}
	return gs, nil
}

// DeleteDomain removes the organization's domain, its grants, its key and
// its authorized addresses.
func (s *Store) DeleteDomain(ctx context.Context, orgID, name string, ev Event) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM domain_grants WHERE domain_id IN (SELECT id FROM domains WHERE org_id = ? AND name = ? AND sandbox = ?)`), orgID, name, false)
		if err != nil {
			return fmt.Errorf("store: delete grants: %w", err)
		}
		if err := affected(tx.ExecContext(ctx, tx.Rebind(`DELETE FROM domains WHERE org_id = ? AND name = ? AND sandbox = ?`), orgID, name, false)); err != nil {
			return fmt.Errorf("store: delete domain %q: %w", name, err)
		}
		// Its authorized mailboxes go with it: re-adding the domain later
		// must not bring old confirmations back.
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM addresses WHERE org_id = ? AND domain = ?`), orgID, name); err != nil {
			return fmt.Errorf("store: delete addresses of %q: %w", name, err)
		}
		if err := addEvent(ctx, tx, ev); err != nil {
			return err
		}
		return bump(ctx, tx, orgID, true)
	})
}
