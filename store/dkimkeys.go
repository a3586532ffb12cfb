package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// DKIM key states (dkim_keys.state).
const (
	KeyNext    = "next"    // published at the second selector, not signing yet
	KeyActive  = "active"  // signing; mirrored in the domains.dkim_* columns
	KeyRetired = "retired" // no longer signing, still published until SafeToRemoveAt
	KeyRemoved = "removed" // history only
)

// DKIMKey is one DKIM key of a domain. PrivateKey never leaves the server.
// A BYOK key is published by the customer at Selector._domainkey.DOMAIN
// on their own DNS, never by the provider zone.
type DKIMKey struct {
	ID             string `db:"id"`
	DomainID       string `db:"domain_id"`
	Selector       string `db:"selector"`
	Algorithm      string `db:"algorithm"`
	PrivateKey     string `db:"private_key"`
	TXT            string `db:"txt"`
	State          string `db:"state"`
	BYOK           bool   `db:"byok"`
	CreatedAt      Time   `db:"created_at"`
	ActivatedAt    Time   `db:"activated_at"`
	RetiredAt      Time   `db:"retired_at"`
	SafeToRemoveAt Time   `db:"safe_to_remove_at"`
}

// KeyRow is a published key other than the active one (next or retired,
// not BYOK), as the provider zone needs it: no private key.
type KeyRow struct {
	DomainID string `db:"domain_id"`
	Selector string `db:"selector"`
	TXT      string `db:"txt"`
}

const dkimKeyCols = `id, domain_id, selector, algorithm, private_key, txt, state, byok, created_at, activated_at, retired_at, safe_to_remove_at`

// stateKeyWhere selects the keys the zone publishes besides the active one.
const stateKeyWhere = `k.state IN ('next', 'retired') AND k.byok = FALSE AND k.txt <> '' AND k.txt <> '-'`

func insertKey(ctx context.Context, tx *sqlx.Tx, k DKIMKey) error {
	return insertKeys(ctx, tx, k)
}

// insertKeys stores ks with one INSERT.
func insertKeys(ctx context.Context, tx *sqlx.Tx, ks ...DKIMKey) error {
	var q strings.Builder
	q.WriteString(`INSERT INTO dkim_keys (` + dkimKeyCols + `) VALUES `)
	args := make([]any, 0, 12*len(ks))
	sels := make([]string, 0, len(ks))
	for i, k := range ks {
		if k.ID == "" {
			k.ID = NewID()
		}
		if k.TXT == "" {
			k.TXT, _ = publicTXT(k.PrivateKey)
		}
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, k.ID, k.DomainID, k.Selector, k.Algorithm, k.PrivateKey, k.TXT, k.State, k.BYOK,
			k.CreatedAt, k.ActivatedAt, k.RetiredAt, k.SafeToRemoveAt)
		sels = append(sels, k.Selector)
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(q.String()), args...); err != nil {
		return fmt.Errorf("store: insert DKIM key %q: %w", strings.Join(sels, ", "), err)
	}
	return nil
}

// DKIMKeys returns the keys of a domain (every state), oldest first.
func (s *Store) DKIMKeys(ctx context.Context, domainID string) ([]DKIMKey, error) {
	ks := []DKIMKey{}
	err := s.db.SelectContext(ctx, &ks, s.db.Rebind(`SELECT `+dkimKeyCols+` FROM dkim_keys WHERE domain_id = ? ORDER BY created_at, id`), domainID)
	if err != nil {
		return nil, fmt.Errorf("store: DKIM keys: %w", err)
	}
	return ks, nil
}

// PublishNextKey stores k as the domain's next key (state next), with its
// events, unless the domain already has a next key (ErrConflict): two
// instances never publish two.
func (s *Store) PublishNextKey(ctx context.Context, d Domain, k DKIMKey, evs []Event) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var n int
		if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT COUNT(*) FROM dkim_keys WHERE domain_id = ? AND state = 'next'`), d.ID); err != nil {
			return fmt.Errorf("store: next key of %q: %w", d.Name, err)
		}
		if n > 0 {
			return ErrConflict
		}
		k.DomainID, k.State = d.ID, KeyNext
		if err := insertKey(ctx, tx, k); err != nil {
			return err
		}
		if err := addEvents(ctx, tx, evs); err != nil {
			return err
		}
		return bump(ctx, tx, d.OrgID, true)
	})
}

// ActivateNextKey switches the domain's signing to its next key nextID:
// next -> active (activated_at now), the active key -> retired
// (safe_to_remove_at = removeAt), and the domains.dkim_* columns to the
// new key, in one transaction with its events. When nextID is no longer
// the next key (another instance rotated) nothing changes: ErrConflict.
func (s *Store) ActivateNextKey(ctx context.Context, d Domain, nextID string, now, removeAt Time, evs []Event) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE dkim_keys SET state = 'active', activated_at = ? WHERE id = ? AND domain_id = ? AND state = 'next'`),
			now, nextID, d.ID)
		if err := affected(res, err); err != nil {
			if err == ErrNotFound {
				return ErrConflict
			}
			return fmt.Errorf("store: activate key of %q: %w", d.Name, err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE dkim_keys SET state = 'retired', retired_at = ?, safe_to_remove_at = ?
			WHERE domain_id = ? AND state = 'active' AND id <> ?`), now, removeAt, d.ID, nextID); err != nil {
			return fmt.Errorf("store: retire key of %q: %w", d.Name, err)
		}
		var k DKIMKey
		if err := tx.GetContext(ctx, &k, tx.Rebind(`SELECT `+dkimKeyCols+` FROM dkim_keys WHERE id = ?`), nextID); err != nil {
			return fmt.Errorf("store: read key of %q: %w", d.Name, err)
		}
		if err := mirrorActive(ctx, tx, d, k); err != nil {
			return err
		}
		if err := addEvents(ctx, tx, evs); err != nil {
			return err
		}
		return bump(ctx, tx, d.OrgID, true)
	})
}

// mirrorActive copies the active key k into the domains.dkim_* columns,
// which the signer and the zone read.
func mirrorActive(ctx context.Context, tx *sqlx.Tx, d Domain, k DKIMKey) error {
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE domains SET dkim_selector = ?, dkim_algorithm = ?, dkim_key = ?, dkim_txt = ?, dkim_byok = ?
		WHERE id = ?`), k.Selector, k.Algorithm, k.PrivateKey, k.TXT, k.BYOK, d.ID); err != nil {
		return fmt.Errorf("store: switch key of %q: %w", d.Name, err)
	}
	return nil
}

// ReplaceNextKey puts k in the place of the domain's next key oldID (a
// rotation to another algorithm): the old next key, which never signed,
// becomes removed and k the next key, in one transaction with its events.
// When oldID is no longer the next key, nothing changes: ErrConflict.
func (s *Store) ReplaceNextKey(ctx context.Context, d Domain, oldID string, k DKIMKey, evs []Event) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE dkim_keys SET state = 'removed' WHERE id = ? AND domain_id = ? AND state = 'next'`), oldID, d.ID)
		if err := affected(res, err); err != nil {
			if err == ErrNotFound {
				return ErrConflict
			}
			return fmt.Errorf("store: replace next key of %q: %w", d.Name, err)
		}
		k.DomainID, k.State, k.BYOK = d.ID, KeyNext, false
		if err := insertKey(ctx, tx, k); err != nil {
			return err
		}
		if err := addEvents(ctx, tx, evs); err != nil {
			return err
		}
		return bump(ctx, tx, d.OrgID, true)
	})
}

// ActivateBYOKKey makes k, a key the customer publishes on their own DNS,
// the domain's active key (byok, activated now; the zone never serves it)
// and retires the key that was active (safe_to_remove_at = removeAt), in
// one transaction with its events. activeID is the key the caller saw
// active; when it is no longer, nothing changes: ErrConflict. A next key
// stays next, so a later rotation returns to the delegated selectors.
func (s *Store) ActivateBYOKKey(ctx context.Context, d Domain, activeID string, k DKIMKey, now, removeAt Time, evs []Event) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE dkim_keys SET state = 'retired', retired_at = ?, safe_to_remove_at = ?
			WHERE id = ? AND domain_id = ? AND state = 'active'`), now, removeAt, activeID, d.ID)
		if err := affected(res, err); err != nil {
			if err == ErrNotFound {
				return ErrConflict
			}
			return fmt.Errorf("store: retire key of %q: %w", d.Name, err)
		}
		k.DomainID, k.State, k.BYOK, k.ActivatedAt = d.ID, KeyActive, true, now
		if k.ID == "" {
			k.ID = NewID()
		}
		if k.TXT == "" {
			k.TXT, _ = publicTXT(k.PrivateKey)
		}
		if err := insertKey(ctx, tx, k); err != nil {
			return err
		}
		if err := mirrorActive(ctx, tx, d, k); err != nil {
			return err
		}
		if err := addEvents(ctx, tx, evs); err != nil {
			return err
		}
		return bump(ctx, tx, d.OrgID, true)
	})
}

// UpdateDomainRecords replaces the domain's records (a legacy domain that
// gained its second DKIM selector) unless they changed since prev was
// read: then nothing changes and ErrConflict is returned.
func (s *Store) UpdateDomainRecords(ctx context.Context, prev Domain, records string) error {
	err := affected(s.db.ExecContext(ctx, s.db.Rebind(`UPDATE domains SET records = ? WHERE id = ? AND records = ?`), records, prev.ID, prev.Records))
	if err == ErrNotFound {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("store: update records of %q: %w", prev.Name, err)
	}
	return nil
}

// RemoveRetiredKey marks the retired key keyID removed (the zone stops
// publishing it) once its safe_to_remove_at has passed, and stores next,
// when given, as the domain's fresh next key (usually at the freed
// selector). When keyID is no longer retired or not yet due, nothing
// changes: ErrConflict.
func (s *Store) RemoveRetiredKey(ctx context.Context, d Domain, keyID string, now Time, next *DKIMKey, evs []Event) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE dkim_keys SET state = 'removed' WHERE id = ? AND domain_id = ? AND state = 'retired'
			AND safe_to_remove_at <= ?`), keyID, d.ID, now)
		if err := affected(res, err); err != nil {
			if err == ErrNotFound {
				return ErrConflict
			}
			return fmt.Errorf("store: remove key of %q: %w", d.Name, err)
		}
		if next != nil {
			var n int
			if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT COUNT(*) FROM dkim_keys WHERE domain_id = ? AND state = 'next'`), d.ID); err != nil {
				return fmt.Errorf("store: next key of %q: %w", d.Name, err)
			}
			if n == 0 {
				k := *next
				k.DomainID, k.State = d.ID, KeyNext
				if err := insertKey(ctx, tx, k); err != nil {
					return err
				}
			}
		}
		if err := addEvents(ctx, tx, evs); err != nil {
			return err
		}
		return bump(ctx, tx, d.OrgID, true)
	})
}

// DueKey names a domain with a key that a rotation step is due for.
type DueKey struct {
	DomainID string `db:"domain_id"`
	OrgID    string `db:"org_id"`
	KeyID    string `db:"id"`
}

// RotationsDue lists the verified, non-sandbox domains whose active key,
// not a BYOK key, was activated before cutoff and that have a next key
// (KeyID is the next key).
func (s *Store) RotationsDue(ctx context.Context, cutoff Time, limit int) ([]DueKey, error) {
	var ds []DueKey
	err := s.db.SelectContext(ctx, &ds, s.db.Rebind(`SELECT n.domain_id, d.org_id, n.id FROM dkim_keys a
		JOIN dkim_keys n ON n.domain_id = a.domain_id AND n.state = 'next'
		JOIN domains d ON d.id = a.domain_id
		WHERE a.state = 'active' AND a.byok = FALSE AND a.activated_at < ? AND d.sandbox = FALSE AND d.status IN ('verified', 'failing')
		ORDER BY a.activated_at LIMIT ?`), cutoff, limit)
	if err != nil {
		return nil, fmt.Errorf("store: rotations due: %w", err)
	}
	return ds, nil
}

// RemovalsDue lists the retired keys whose safe_to_remove_at is before now.
func (s *Store) RemovalsDue(ctx context.Context, now Time, limit int) ([]DueKey, error) {
	var ds []DueKey
	err := s.db.SelectContext(ctx, &ds, s.db.Rebind(`SELECT k.domain_id, d.org_id, k.id FROM dkim_keys k
		JOIN domains d ON d.id = k.domain_id
		WHERE k.state = 'retired' AND k.safe_to_remove_at <= ? ORDER BY k.safe_to_remove_at LIMIT ?`), now, limit)
	if err != nil {
		return nil, fmt.Errorf("store: removals due: %w", err)
	}
	return ds, nil
}

// DomainByID returns a domain by its id.
func (s *Store) DomainByID(ctx context.Context, id string) (Domain, error) {
	var d Domain
	if err := s.db.GetContext(ctx, &d, s.db.Rebind(`SELECT `+domainCols+` FROM domains WHERE id = ?`), id); err != nil {
		return Domain{}, fmt.Errorf("store: domain %s: %w", id, notFound(err))
	}
	return d, nil
}

// KeyStateCounts returns how many keys are in each state, for metrics.
func (s *Store) KeyStateCounts(ctx context.Context) (map[string]int, error) {
	var rows []struct {
		State string `db:"state"`
		N     int    `db:"n"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT state, COUNT(*) AS n FROM dkim_keys GROUP BY state`); err != nil {
		return nil, fmt.Errorf("store: DKIM key states: %w", err)
	}
	m := map[string]int{}
	for _, r := range rows {
		m[r.State] = r.N
	}
	return m, nil
}

// OldestActiveKey returns when the longest-serving active key, BYOK keys
// included, was activated; the zero Time when there is none. For metrics.
func (s *Store) OldestActiveKey(ctx context.Context) (Time, error) {
	var t Time
	if err := s.db.GetContext(ctx, &t, `SELECT MIN(activated_at) FROM dkim_keys WHERE state = 'active'`); err != nil {
		return Time{}, fmt.Errorf("store: oldest active DKIM key: %w", err)
	}
	return t, nil
}
