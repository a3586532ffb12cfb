package seeddb

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/lib/pq"
	_ "modernc.org/sqlite" // the "sqlite" driver, as store uses it
)

// writer writes rows in bulk inside one transaction.
type writer interface {
	// copy writes the rows fill emits into table; values come in the
	// order of cols, and columns the table does not have (a migration
	// not applied in this tree) are dropped.
	copy(ctx context.Context, table string, cols []string, fill func(emit func(...any) error) error) error
	// finish bumps the state version once, commits and returns the
	// new version.
	finish(ctx context.Context) (int64, error)
	close()
}

func openWriter(ctx context.Context, driver, dsn string) (writer, error) {
	switch driver {
	case "postgres":
		return openPostgres(ctx, dsn)
	case "sqlite":
		return openSQLite(ctx, dsn)
	}
	return nil, fmt.Errorf("seeddb: unknown driver %q", driver)
}

// base holds what both dialects share: one connection, one transaction.
type base struct {
	db      *sql.DB
	tx      *sql.Tx
	columns func(ctx context.Context, table string) ([]string, error)
}

// empty returns ErrNotEmpty when the database holds an organization.
func empty(ctx context.Context, db *sql.DB) error {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM orgs`).Scan(&n); err != nil {
		return fmt.Errorf("seeddb: count organizations: %w", err)
	}
	if n > 0 {
		return ErrNotEmpty
	}
	return nil
}

// present returns the indexes into cols of the columns table has; a
// column of the table we do not fill must have a default.
func (b *base) present(ctx context.Context, table string, cols []string) ([]int, []string, error) {
	have, err := b.columns(ctx, table)
	if err != nil {
		return nil, nil, fmt.Errorf("seeddb: columns of %s: %w", table, err)
	}
	var keep []int
	var names []string
	for i, c := range cols {
		if slices.Contains(have, c) {
			keep = append(keep, i)
			names = append(names, c)
		}
	}
	return keep, names, nil
}

func pick(keep []int, vals []any) []any {
	if len(keep) == len(vals) {
		return vals
	}
	out := make([]any, len(keep))
	for i, k := range keep {
		out[i] = vals[k]
	}
	return out
}

func (b *base) finish(ctx context.Context) (int64, error) {
	var v int64
	// One bump for the whole dataset, no change-log entry: an instance
	// that had loaded an earlier version reads everything again.
	if err := b.tx.QueryRowContext(ctx, `UPDATE state_version SET version = version + 1, zone_version = version + 1 WHERE id = 1 RETURNING version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("seeddb: bump state version: %w", err)
	}
	if cols, err := b.columns(ctx, "state_changes"); err != nil {
		return 0, fmt.Errorf("seeddb: columns of state_changes: %w", err)
	} else if len(cols) > 0 {
		if _, err := b.tx.ExecContext(ctx, `DELETE FROM state_changes`); err != nil {
			return 0, fmt.Errorf("seeddb: clear the change log: %w", err)
		}
	}
	if err := b.tx.Commit(); err != nil {
		return 0, fmt.Errorf("seeddb: commit: %w", err)
	}
	b.tx = nil
	return v, nil
}

func (b *base) close() {
	if b.tx != nil {
		_ = b.tx.Rollback()
	}
	b.db.Close()
}

// postgres writes with COPY FROM STDIN (pq.CopyIn), all tables in one
// transaction, then VACUUM ANALYZE so that autovacuum does not run into
// the measurements and the planner knows the sizes.
type postgres struct{ base }

func openPostgres(ctx context.Context, dsn string) (*postgres, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("seeddb: open postgres: %w", err)
	}
	db.SetMaxOpenConns(2)
	if err := empty(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("seeddb: begin: %w", err)
	}
	p := &postgres{base{db: db, tx: tx}}
	p.columns = func(ctx context.Context, table string) ([]string, error) {
		return strings1(ctx, p.tx, `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`, table)
	}
	return p, nil
}

func (p *postgres) copy(ctx context.Context, table string, cols []string, fill func(emit func(...any) error) error) error {
	keep, names, err := p.present(ctx, table, cols)
	if err != nil {
		return err
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = pq.QuoteIdentifier(n)
	}
	stmt, err := p.tx.PrepareContext(ctx, "COPY "+pq.QuoteIdentifier(table)+" ("+strings.Join(quoted, ", ")+") FROM STDIN")
	if err != nil {
		return fmt.Errorf("seeddb: copy into %s: %w", table, err)
	}
	defer stmt.Close()
	err = fill(func(vals ...any) error {
		_, err := stmt.ExecContext(ctx, pick(keep, vals)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("seeddb: copy into %s: %w", table, err)
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return fmt.Errorf("seeddb: copy into %s: %w", table, err)
	}
	return nil
}

func (p *postgres) finish(ctx context.Context) (int64, error) {
	v, err := p.base.finish(ctx)
	if err != nil {
		return 0, err
	}
	for _, t := range []string{"orgs", "smtp_accounts", "domains", "dkim_keys"} {
		if _, err := p.db.ExecContext(ctx, `VACUUM (ANALYZE) `+t); err != nil {
			return v, fmt.Errorf("seeddb: vacuum %s: %w", t, err)
		}
	}
	return v, nil
}

// sqlite writes multi-row INSERTs through prepared statements in one
// transaction, with synchronous=OFF and an in-memory rollback journal
// during the load; the database is put back in WAL mode afterwards.
type sqlite struct {
	base
	batch int
}

func openSQLite(ctx context.Context, path string) (*sqlite, error) {
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("seeddb: open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := empty(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	for _, q := range []string{`PRAGMA journal_mode = MEMORY`, `PRAGMA synchronous = OFF`, `PRAGMA cache_size = -1048576`, `PRAGMA temp_store = MEMORY`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			return nil, fmt.Errorf("seeddb: %s: %w", q, err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("seeddb: begin: %w", err)
	}
	s := &sqlite{base: base{db: db, tx: tx}, batch: 100}
	s.columns = func(ctx context.Context, table string) ([]string, error) {
		return strings1(ctx, s.tx, `SELECT name FROM pragma_table_info(?)`, table)
	}
	return s, nil
}

func (s *sqlite) copy(ctx context.Context, table string, cols []string, fill func(emit func(...any) error) error) error {
	keep, names, err := s.present(ctx, table, cols)
	if err != nil {
		return err
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(names)), ",") + ")"
	insert := func(n int) string {
		return `INSERT INTO ` + table + ` (` + strings.Join(names, ", ") + `) VALUES ` + strings.TrimSuffix(strings.Repeat(row+",", n), ",")
	}
	full, err := s.tx.PrepareContext(ctx, insert(s.batch))
	if err != nil {
		return fmt.Errorf("seeddb: insert into %s: %w", table, err)
	}
	defer full.Close()
	args := make([]any, 0, s.batch*len(names))
	n := 0
	err = fill(func(vals ...any) error {
		args = append(args, pick(keep, vals)...)
		if n++; n < s.batch {
			return nil
		}
		_, err := full.ExecContext(ctx, args...)
		args, n = args[:0], 0
		return err
	})
	if err == nil && n > 0 {
		_, err = s.tx.ExecContext(ctx, insert(n), args...)
	}
	if err != nil {
		return fmt.Errorf("seeddb: insert into %s: %w", table, err)
	}
	return nil
}

func (s *sqlite) finish(ctx context.Context) (int64, error) {
	v, err := s.base.finish(ctx)
	if err != nil {
		return 0, err
	}
	if _, err := s.db.ExecContext(ctx, `PRAGMA journal_mode = WAL`); err != nil {
		return v, fmt.Errorf("seeddb: back to WAL: %w", err)
	}
	return v, nil
}

func strings1(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
