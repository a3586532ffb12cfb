package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/sendergate/sendergate/dkim"
)

// The rows a policy snapshot and the provider zone are built from: only
// what a decision or a zone record needs (no private key, no check
// history), so a load at a million domains reads little.

// AccountRow is an SMTP account as the snapshot needs it.
type AccountRow struct {
	ID           string `db:"id"`
	OrgID        string `db:"org_id"`
	Name         string `db:"name"`
	Username     string `db:"username"`
	PasswordHash string `db:"password_hash"`
	CreatedAt    Time   `db:"created_at"` // for limits.new_account_age
}

// DomainRow is a domain as the snapshot and the zone need it. DKIMTXT is
// the public key's TXT value: the zone never parses a private key.
type DomainRow struct {
	ID          string `db:"id"`
	OrgID       string `db:"org_id"`
	Name        string `db:"name"`
	Sandbox     bool   `db:"sandbox"`
	Token       string `db:"token"`
	Status      string `db:"status"`
	ReturnPath  string `db:"return_path"`
	Selector    string `db:"dkim_selector"`
	DKIMTXT     string `db:"dkim_txt"`
	DMARCPolicy string `db:"dmarc_policy"`
	DMARCRUA    string `db:"dmarc_rua"`
	DMARCPct    int    `db:"dmarc_pct"`
	Restricted  bool   `db:"restricted"`
	// DKIMKey is the PEM private key, read only in an incremental load
	// (a few organizations), so that a domain added or changed after
	// start is signed without a later read of the database.
	DKIMKey string `db:"dkim_key"`
	// BYOK is set when the active key is the customer's own
	// (domains.dkim_byok): the zone does not serve it.
	BYOK bool `db:"dkim_byok"`
	// Extra are the domain's other published keys (next, retired), set
	// by the loader from State.Keys; the zone serves them besides the
	// active one.
	Extra []KeyRow `db:"-"`
}

// AddressRow is a confirmed sender address.
type AddressRow struct {
	OrgID string `db:"org_id"`
	Email string `db:"email"`
}

// OrgRow is an organization.
type OrgRow struct {
	ID   string `db:"id"`
	Name string `db:"name"`
}

// State is a consistent read of everything the snapshot and the zone hold,
// for every organization (Full) or for the organizations that changed
// since a version (Orgs lists them all, including removed ones, which have
// no rows left).
type State struct {
	// Version is the state version the rows reflect; ZoneVersion the
	// version of the last change that may have changed the zone (the
	// zone's SOA serial).
	Version, ZoneVersion int64
	// Full is set when the rows are everything; otherwise they are the
	// rows of the organizations in Orgs.
	Full      bool
	Orgs      []string // ids of the organizations read (changed ones when !Full)
	OrgRows   []OrgRow
	Accounts  []AccountRow
	Domains   []DomainRow
	Grants    []Grant
	Confirmed []AddressRow
	Limits    []LimitRow // sending limits set over the API
	// Keys are the published DKIM keys besides each domain's active one
	// (next and retired, not BYOK), for the zone.
	Keys []KeyRow
}

// MaxChanges is how many logged changes LoadState applies incrementally;
// further behind, it reads everything.
const MaxChanges = 5000

// LoadState reads the state changed since version since: the rows of
// every organization changed after it (two statements, see loadChanged),
// or, in one read-only transaction, everything when since is 0, the
// change log no longer reaches back to it, or more than MaxChanges
// changes happened. Nothing changed gives a State with no Orgs and
// Version == since.
func (s *Store) LoadState(ctx context.Context, since int64) (*State, error) {
	if since > 0 {
		st, ok, err := s.loadChanged(ctx, since)
		if err != nil || ok {
			return st, err
		}
	}
	return s.loadAll(ctx)
}

// loadAll reads everything in one read-only transaction. (Reading the
// DKIM keys in a second transaction beside it, on another connection,
// made a million-domain SQLite load slower: 23.8 s against 19.3 s.)
func (s *Store) loadAll(ctx context.Context) (*State, error) {
	var st *State
	err := s.readTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		if st, err = readVersion(ctx, tx); err == nil {
			err = st.readAll(ctx, tx, s.dialect)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// readVersion returns a full State holding only the state version.
func readVersion(ctx context.Context, tx *sqlx.Tx) (*State, error) {
	st := &State{Full: true}
	if err := tx.QueryRowxContext(ctx, `SELECT version, zone_version FROM state_version WHERE id = 1`).Scan(&st.Version, &st.ZoneVersion); err != nil {
		return nil, fmt.Errorf("store: read state version: %w", err)
	}
	return st, nil
}

const (
	stateAccountCols = `id, org_id, name, username, password_hash, created_at`
	stateDomainCols  = `id, org_id, name, sandbox, token, status, return_path, dkim_selector, dkim_txt, dkim_byok,
		dmarc_policy, dmarc_rua, dmarc_pct, restricted`
)

// readAll reads every row.
func (st *State) readAll(ctx context.Context, tx *sqlx.Tx, dialect string) error {
	queries := []struct {
		dest any
		q    string
	}{
		{&st.OrgRows, `SELECT id, name FROM orgs`},
		{&st.Accounts, `SELECT ` + stateAccountCols + ` FROM smtp_accounts`},
		{&st.Grants, `SELECT domain_id, account_id FROM domain_grants`},
		{&st.Confirmed, `SELECT org_id, email FROM addresses WHERE status = 'confirmed'`},
		{&st.Limits, `SELECT ` + limitCols + ` FROM sending_limits`},
	}
	for _, q := range queries {
		if err := tx.SelectContext(ctx, q.dest, q.q); err != nil {
			return fmt.Errorf("store: load state: %w", err)
		}
	}
	// The two large tables are scanned by hand into slices sized ahead:
	// through sqlx's reflection, growing a slice of a million rows was a
	// fifth of a cold start.
	n := domainsHint(ctx, tx, dialect)
	var err error
	st.Domains, err = scanRows(ctx, tx, n, `SELECT `+stateDomainCols+` FROM domains`, func(r *sql.Rows, d *DomainRow) error {
		return r.Scan(&d.ID, &d.OrgID, &d.Name, &d.Sandbox, &d.Token, &d.Status, &d.ReturnPath, &d.Selector,
			&d.DKIMTXT, &d.BYOK, &d.DMARCPolicy, &d.DMARCRUA, &d.DMARCPct, &d.Restricted)
	})
	if err != nil {
		return err
	}
	// A domain has one next key most of the time.
	if err := st.readKeys(ctx, tx, len(st.Domains)); err != nil {
		return err
	}
	for _, o := range st.OrgRows {
		st.Orgs = append(st.Orgs, o.ID)
	}
	return nil
}

// readKeys reads the published keys besides the active ones, with room
// for about n.
func (st *State) readKeys(ctx context.Context, tx *sqlx.Tx, n int) error {
	var err error
	st.Keys, err = scanRows(ctx, tx, n, `SELECT k.domain_id, k.selector, k.txt FROM dkim_keys k WHERE `+stateKeyWhere, func(r *sql.Rows, k *KeyRow) error {
		return r.Scan(&k.DomainID, &k.Selector, &k.TXT)
	})
	return err
}

// domainsHint returns about how many domains there are, without
// counting them (COUNT(*) read the whole table: 1.6 s of a SQLite cold
// start at a million domains): SQLite's largest rowid, PostgreSQL's
// planner estimate; 0 when neither is known.
func domainsHint(ctx context.Context, tx *sqlx.Tx, dialect string) int {
	q := `SELECT COALESCE(MAX(rowid), 0) FROM domains`
	if dialect == "postgres" {
		q = `SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = 'domains'::regclass`
	}
	var n int64
	if err := tx.QueryRowContext(ctx, q).Scan(&n); err != nil || n < 0 {
		return 0
	}
	return int(min(n, 1<<26))
}

// scanRows runs q in tx and scans its rows with scan into a slice with
// room for about n of them.
func scanRows[T any](ctx context.Context, tx *sqlx.Tx, n int, q string, scan func(*sql.Rows, *T) error) ([]T, error) {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("store: load state: %w", err)
	}
	defer rows.Close()
	out := make([]T, 0, n)
	for rows.Next() {
		out = append(out, *new(T))
		if err := scan(rows, &out[len(out)-1]); err != nil {
			return nil, fmt.Errorf("store: load state: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: load state: %w", err)
	}
	return out, nil
}

// DomainKey returns the PEM private key of a domain, read when the policy
// first signs for it.
func (s *Store) DomainKey(ctx context.Context, domainID string) (string, error) {
	var pemText string
	err := s.rdb.GetContext(ctx, &pemText, s.rdb.Rebind(`SELECT dkim_key FROM domains WHERE id = ?`), domainID)
	if err != nil {
		return "", notFound(err)
	}
	return pemText, nil
}

// FillDKIMTXT computes the public TXT value of every domain stored
// without one (rows written before the column existed), in batches, and
// returns how many it filled.
func (s *Store) FillDKIMTXT(ctx context.Context) (int, error) {
	total := 0
	for {
		var rows []struct {
			ID  string `db:"id"`
			Key string `db:"dkim_key"`
		}
		if err := s.db.SelectContext(ctx, &rows, `SELECT id, dkim_key FROM domains WHERE dkim_txt = '' LIMIT 500`); err != nil {
			return total, fmt.Errorf("store: domains without a DKIM TXT: %w", err)
		}
		if len(rows) == 0 {
			return total, nil
		}
		err := s.inTx(ctx, func(tx *sqlx.Tx) error {
			for _, r := range rows {
				txt, err := publicTXT(r.Key)
				if err != nil {
					txt = "-" // unreadable key: never retried, never published
				}
				if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE domains SET dkim_txt = ? WHERE id = ?`), txt, r.ID); err != nil {
					return fmt.Errorf("store: fill DKIM TXT: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(rows)
	}
}

// publicTXT is the DKIM TXT value of a PEM private key.
func publicTXT(pemText string) (string, error) {
	k, err := dkim.ParsePrivateKey(pemText)
	if err != nil {
		return "", err
	}
	return dkim.TXTValue(k.Public())
}

// readTx runs fn in a read-only transaction that sees one consistent
// state: REPEATABLE READ on PostgreSQL; on SQLite a read transaction on
// the read pool (WAL: it never blocks the writer, nor is blocked by it).
func (s *Store) readTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.dialect == "postgres" {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.rdb.BeginTxx(ctx, opts)
	if err != nil {
		return fmt.Errorf("store: begin read: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
