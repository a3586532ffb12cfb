package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

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
		rows, err := s.rdb.Query("EXPLAIN QUERY PLAN " + q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if p := strings.Join(plan, "; "); !strings.Contains(p, "COVERING INDEX dkim_keys_published") {
			t.Errorf("%s:\nplan %q; want the covering index dkim_keys_published", q, p)
		}
	}
}
