package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// QueryPlan returns SQLite's EXPLAIN QUERY PLAN of q on db, its steps
// joined by "; " (for the plan tests of this package and of store_test).
func QueryPlan(t testing.TB, db *sql.DB, q string) string {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN " + q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "; ")
}

// TestPublishedKeysIndexOnly: on SQLite, a full load's read of the
// published keys and an incremental read of some domains' keys are
// index-only scans of dkim_keys_published (migration 10), even without
// statistics: through another index each key was a lookup into table rows
// that hold the private keys.
func TestPublishedKeysIndexOnly(t *testing.T) {
	s, err := Open(context.Background(), "sqlite", filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT k.domain_id, k.selector, k.txt FROM dkim_keys k WHERE ` + stateKeyWhere, // readKeys
		strings.ReplaceAll(domainRowsQuery, "(?)", "('a', 'b')"),
	} {
		if p := QueryPlan(t, s.rdb.DB, q); !strings.Contains(p, "COVERING INDEX dkim_keys_published") {
			t.Errorf("%s:\nplan %q; want the covering index dkim_keys_published", q, p)
		}
	}
}
