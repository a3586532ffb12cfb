package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// The incremental read of LoadState is two statements in one read-only
// transaction: the state version, the organizations the change log names
// since a version and their rows by organization, as one UNION ALL whose
// rows say which table they come from; then the grants and the published
// keys of their domains by domain id. It replaces a transaction of eleven
// statements. Each table's columns have their own slots: text t1..t11,
// integers n1..n4, booleans b1..b3.
//
// Grants and keys are read by a list of domain ids, not by a subquery:
// before PostgreSQL has statistics for dkim_keys (autovacuum's first
// ANALYZE can lag minutes behind a bulk import) a semi-join from the
// domains scanned every key of the database, where a list uses
// dkim_keys_domain whatever the statistics say.

// changedQuery's two parameters are since, twice. At most MaxChanges
// change rows are read (a bounded range of the primary key, whatever a
// plan made without since assumes): further behind, their count falls
// short and the caller reads everything.
var changedQuery = `WITH v AS (SELECT version, zone_version FROM state_version WHERE id = 1),
	c AS (SELECT version, org_id FROM state_changes
		WHERE version > ? AND version <= CAST(? AS BIGINT) + ` + strconv.Itoa(MaxChanges) + ` AND version <= (SELECT version FROM v)),
	o AS (SELECT org_id, MIN(version) AS first FROM c GROUP BY org_id)
SELECT 'v' AS kind, CAST(NULL AS TEXT) AS t1, CAST(NULL AS TEXT) AS t2, CAST(NULL AS TEXT) AS t3, CAST(NULL AS TEXT) AS t4,
	CAST(NULL AS TEXT) AS t5, CAST(NULL AS TEXT) AS t6, CAST(NULL AS TEXT) AS t7, CAST(NULL AS TEXT) AS t8,
	CAST(NULL AS TEXT) AS t9, CAST(NULL AS TEXT) AS t10, CAST(NULL AS TEXT) AS t11,
	version AS n1, zone_version AS n2, (SELECT COUNT(*) FROM c) AS n3, CAST(NULL AS BIGINT) AS n4,
	CAST(NULL AS BOOLEAN) AS b1, CAST(NULL AS BOOLEAN) AS b2, CAST(NULL AS BOOLEAN) AS b3
	FROM v
UNION ALL SELECT 'c', org_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	first, NULL, NULL, NULL, NULL, NULL, NULL FROM o
UNION ALL SELECT 'o', id, name, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM orgs WHERE id IN (SELECT org_id FROM o)
UNION ALL SELECT 'a', id, org_id, name, username, password_hash, NULL, NULL, NULL, NULL, NULL, NULL,
	created_at, NULL, NULL, NULL, NULL, NULL, NULL FROM smtp_accounts WHERE org_id IN (SELECT org_id FROM o)
UNION ALL SELECT 'd', id, org_id, name, token, status, return_path, dkim_selector, dkim_txt, dmarc_policy, dmarc_rua, dkim_key,
	dmarc_pct, NULL, NULL, NULL, sandbox, dkim_byok, restricted FROM domains WHERE org_id IN (SELECT org_id FROM o)
UNION ALL SELECT 'e', org_id, email, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM addresses WHERE status = 'confirmed' AND org_id IN (SELECT org_id FROM o)
UNION ALL SELECT 'l', org_id, account_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	per_minute, per_hour, per_day, updated_at, NULL, NULL, NULL FROM sending_limits WHERE org_id IN (SELECT org_id FROM o)`

// domainRowsQuery reads the grants ('g': domain, account) and the
// published keys ('k': domain, selector, TXT) of the domains listed in
// both "IN (?)".
const domainRowsQuery = `SELECT 'g' AS kind, domain_id, account_id, '' AS txt FROM domain_grants WHERE domain_id IN (?)
UNION ALL SELECT 'k', k.domain_id, k.selector, k.txt FROM dkim_keys k WHERE k.domain_id IN (?) AND ` + stateKeyWhere

// changedRow is one row of changedQuery.
type changedRow struct {
	kind string
	t    [11]sql.NullString
	n    [4]sql.NullInt64
	b    [3]sql.NullBool
}

func (r *changedRow) dest() []any {
	d := make([]any, 0, 1+len(r.t)+len(r.n)+len(r.b))
	d = append(d, &r.kind)
	for i := range r.t {
		d = append(d, &r.t[i])
	}
	for i := range r.n {
		d = append(d, &r.n[i])
	}
	for i := range r.b {
		d = append(d, &r.b[i])
	}
	return d
}

// ms is a Unix-milliseconds column as a Time (NULL: the zero Time).
func ms(n sql.NullInt64) Time {
	if !n.Valid {
		return Time{}
	}
	return Time{time.UnixMilli(n.Int64).UTC()}
}

// errPlainQuery means the server refused the prepared statement: the read
// is tried again with the plain query.
var errPlainQuery = errors.New("store: prepared statement refused")

// loadChanged reads the state changed since version since (> 0). ok is
// false when that cannot be done incrementally (the log does not reach
// back to since, more than MaxChanges changes, or since is ahead of the
// database): the caller then reads everything.
func (s *Store) loadChanged(ctx context.Context, since int64) (st *State, ok bool, err error) {
	for range 2 {
		err = s.readTx(ctx, func(tx *sqlx.Tx) error {
			st, ok, err = s.readChanged(ctx, tx, since)
			return err
		})
		if !errors.Is(err, errPlainQuery) {
			break
		}
	}
	if err != nil {
		return nil, false, err
	}
	return st, ok, nil
}

func (s *Store) readChanged(ctx context.Context, tx *sqlx.Tx, since int64) (*State, bool, error) {
	rows, err := s.queryChanged(ctx, tx, since)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	st := &State{}
	var (
		r       changedRow
		dest    = r.dest()
		changes int64
		first   = map[string]int64{}
	)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, false, fmt.Errorf("store: load changes: %w", err)
		}
		t, n, b := &r.t, &r.n, &r.b
		switch r.kind {
		case "v":
			st.Version, st.ZoneVersion, changes = n[0].Int64, n[1].Int64, n[2].Int64
		case "c":
			st.Orgs = append(st.Orgs, t[0].String)
			first[t[0].String] = n[0].Int64
		case "o":
			st.OrgRows = append(st.OrgRows, OrgRow{ID: t[0].String, Name: t[1].String})
		case "a":
			st.Accounts = append(st.Accounts, AccountRow{ID: t[0].String, OrgID: t[1].String, Name: t[2].String,
				Username: t[3].String, PasswordHash: t[4].String, CreatedAt: ms(n[0])})
		case "d":
			st.Domains = append(st.Domains, DomainRow{ID: t[0].String, OrgID: t[1].String, Name: t[2].String, Token: t[3].String,
				Status: t[4].String, ReturnPath: t[5].String, Selector: t[6].String, DKIMTXT: t[7].String,
				DMARCPolicy: t[8].String, DMARCRUA: t[9].String, DKIMKey: t[10].String, DMARCPct: int(n[0].Int64),
				Sandbox: b[0].Bool, BYOK: b[1].Bool, Restricted: b[2].Bool})
		case "e":
			st.Confirmed = append(st.Confirmed, AddressRow{OrgID: t[0].String, Email: t[1].String})
		case "l":
			st.Limits = append(st.Limits, LimitRow{OrgID: t[0].String, AccountID: t[1].String,
				PerMinute: n[0].Int64, PerHour: n[1].Int64, PerDay: n[2].Int64, UpdatedAt: ms(n[3])})
		default:
			return nil, false, fmt.Errorf("store: load changes: row of unknown kind %q", r.kind)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("store: load changes: %w", err)
	}
	rows.Close()
	if st.Version == 0 {
		return nil, false, fmt.Errorf("store: load changes: no state version row")
	}
	if st.Version == since {
		return &State{Version: st.Version, ZoneVersion: st.ZoneVersion}, true, nil
	}
	// Versions are consecutive: fewer logged changes than versions means
	// the log was trimmed past since (or too far behind to be listed). A
	// write still committing under a lower version than one visible
	// cannot happen on PostgreSQL: the version row is updated under its
	// lock, so the transaction's snapshot holds every change up to Version.
	if since > st.Version || changes != st.Version-since {
		return nil, false, nil
	}
	// In the order of their first change, as the log lists them.
	slices.SortFunc(st.Orgs, func(a, b string) int { return cmp.Compare(first[a], first[b]) })
	if err := st.readDomainRows(ctx, tx); err != nil {
		return nil, false, err
	}
	return st, true, nil
}

// readDomainRows reads the grants and published keys of st.Domains, in
// batches that keep each IN list short.
func (st *State) readDomainRows(ctx context.Context, tx *sqlx.Tx) error {
	const batch = 500
	ids := make([]string, 0, len(st.Domains))
	for _, d := range st.Domains {
		ids = append(ids, d.ID)
	}
	for len(ids) > 0 {
		part := ids[:min(batch, len(ids))]
		ids = ids[len(part):]
		q, args, err := sqlx.In(domainRowsQuery, part, part)
		if err != nil {
			return fmt.Errorf("store: load changes: %w", err)
		}
		rows, err := tx.QueryContext(ctx, tx.Rebind(q), args...)
		if err != nil {
			return fmt.Errorf("store: load changes: %w", err)
		}
		for rows.Next() {
			var kind, a, b, c string
			if err := rows.Scan(&kind, &a, &b, &c); err != nil {
				rows.Close()
				return fmt.Errorf("store: load changes: %w", err)
			}
			if kind == "g" {
				st.Grants = append(st.Grants, Grant{DomainID: a, AccountID: b})
			} else {
				st.Keys = append(st.Keys, KeyRow{DomainID: a, Selector: b, TXT: c})
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("store: load changes: %w", err)
		}
	}
	return nil
}

// queryChanged runs changedQuery in tx as a prepared statement: planning
// the query each time cost more than running it (PostgreSQL: about 1.5 ms
// of server CPU of 2 per reload, it is parsed once and planned once per
// connection after its first few runs; SQLite: two thirds of the reload
// went to sqlite3_prepare). A PostgreSQL server that
// refuses prepared statements (a pooler that hands each transaction
// another session) gets the plain query from then on (errPlainQuery: the
// transaction is lost, the caller starts another).
func (s *Store) queryChanged(ctx context.Context, tx *sqlx.Tx, since int64) (*sql.Rows, error) {
	q := tx.Rebind(changedQuery)
	s.changedMu.Lock()
	stmt := s.changedStmt
	if stmt == nil && !s.changedPlain {
		var err error
		if stmt, err = s.rdb.PrepareContext(ctx, q); err != nil {
			stmt = nil // not prepared this time; the next reload tries again
		}
		s.changedStmt = stmt
	}
	s.changedMu.Unlock()
	if stmt == nil {
		return s.plainChanged(ctx, tx, q, since)
	}
	rows, err := tx.StmtContext(ctx, stmt).QueryContext(ctx, since, since)
	var pe *pq.Error
	if errors.As(err, &pe) && (pe.Code == "26000" || pe.Code == "42P05") { // invalid_sql_statement_name, duplicate_prepared_statement
		s.changedMu.Lock()
		s.changedPlain, s.changedStmt = true, nil
		s.changedMu.Unlock()
		_ = stmt.Close()
		return nil, fmt.Errorf("store: load changes: %w (%w)", errPlainQuery, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: load changes: %w", err)
	}
	return rows, nil
}

func (s *Store) plainChanged(ctx context.Context, tx *sqlx.Tx, q string, since int64) (*sql.Rows, error) {
	rows, err := tx.QueryContext(ctx, q, since, since)
	if err != nil {
		return nil, fmt.Errorf("store: load changes: %w", err)
	}
	return rows, nil
}
