// Package store persists sendergate's data with sqlx over PostgreSQL
// (lib/pq) or SQLite (modernc.org/sqlite, the embedded default). Both
// dialects run the same embedded migrations and the same queries, written in
// the common subset of the two and rebound to each placeholder style.
//
// Every write that changes what the policy snapshot or the DNS zone holds
// bumps a single state version in the same transaction; processes sharing a
// database poll it to know when to rebuild (see Version).
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sendergate/sendergate/migrations"
)

// Errors returned by the store. Callers compare with errors.Is.
var (
	// ErrNotFound means no row matched (or it belongs to another organization).
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique constraint refused the write.
	ErrConflict = errors.New("already exists")
)

// Store is a handle on the database. It is safe for concurrent use.
type Store struct {
	db *sqlx.DB
	// rdb serves the long reads (snapshot loads): on SQLite a separate
	// pool of read-only connections, so that a load never holds the one
	// writing connection; on PostgreSQL the same pool as db.
	rdb     *sqlx.DB
	dialect string // "sqlite" or "postgres"

	// changedStmt is the incremental state read, prepared (see
	// queryChanged); changedPlain is set once the server refused it.
	changedMu    sync.Mutex
	changedStmt  *sql.Stmt
	changedPlain bool
}

// Open connects to the database named by driver ("sqlite" or "postgres") and
// dsn. For SQLite, dsn is a file path; its directory is created (0700) and
// the connection is set up with foreign keys, WAL and a busy timeout.
func Open(ctx context.Context, driverName, dsn string) (*Store, error) {
	var db, rdb *sqlx.DB
	switch driverName {
	case "sqlite":
		if dir := filepath.Dir(dsn); dir != "" && dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("store: create database directory: %w", err)
			}
		}
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		full := dsn + sep + "_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		raw, oerr := sql.Open("sqlite", full)
		if oerr != nil {
			return nil, fmt.Errorf("store: open sqlite %s: %w", dsn, oerr)
		}
		// One connection: SQLite serialises writers anyway, and a single
		// connection turns "database is locked" into plain queueing.
		raw.SetMaxOpenConns(1)
		db = sqlx.NewDb(raw, "sqlite3") // sqlite3 selects '?' placeholders
		// WAL lets readers run beside the writer; query_only makes a
		// mistaken write on this pool fail instead of racing the writer.
		rraw, oerr := sql.Open("sqlite", dsn+sep+"_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=query_only(1)")
		if oerr != nil {
			raw.Close()
			return nil, fmt.Errorf("store: open sqlite %s for reading: %w", dsn, oerr)
		}
		rraw.SetMaxOpenConns(4)
		rdb = sqlx.NewDb(rraw, "sqlite3")
	case "postgres":
		cfg, err := pq.NewConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		// One round trip per query with arguments instead of two (parse,
		// then bind and execute): lib/pq's single round-trip mode. It
		// changes how []byte arguments are sent (binary), and no column
		// is bytea.
		cfg.BinaryParameters = true
		conn, err := pq.NewConnectorConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		db = sqlx.NewDb(sql.OpenDB(conn), "postgres")
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(10)
		db.SetConnMaxIdleTime(5 * time.Minute)
		rdb = db
	default:
		return nil, fmt.Errorf("store: unknown driver %q", driverName)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st := &Store{db: db, rdb: rdb, dialect: driverName}
	if err := db.PingContext(pctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("store: connect to %s: %w", driverName, err)
	}
	return st, nil
}

// Dialect reports "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// Close closes the database.
func (s *Store) Close() error {
	s.changedMu.Lock()
	if s.changedStmt != nil {
		_ = s.changedStmt.Close()
		s.changedStmt = nil
	}
	s.changedMu.Unlock()
	if s.rdb != s.db {
		s.rdb.Close()
	}
	return s.db.Close()
}

// Migrate applies every pending migration. It is idempotent; on PostgreSQL a
// session lock keeps concurrent instances from migrating at once.
func (s *Store) Migrate(ctx context.Context) (applied int, err error) {
	dialect := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if s.dialect == "postgres" {
		dialect = goose.DialectPostgres
		locker, lerr := lock.NewPostgresSessionLocker()
		if lerr != nil {
			return 0, fmt.Errorf("store: migration lock: %w", lerr)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, s.db.DB, migrations.FS, opts...)
	if err != nil {
		return 0, fmt.Errorf("store: migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: migrate: %w", err)
	}
	return len(res), nil
}

// Time is a timestamp stored as Unix milliseconds; the zero Time is NULL.
type Time struct{ time.Time }

// Scan implements sql.Scanner.
func (t *Time) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		t.Time = time.Time{}
	case int64:
		t.Time = time.UnixMilli(x).UTC()
	default:
		return fmt.Errorf("store: cannot scan %T into Time", v)
	}
	return nil
}

// Value implements driver.Valuer.
func (t Time) Value() (driver.Value, error) {
	if t.IsZero() {
		return nil, nil
	}
	return t.UnixMilli(), nil
}

// Ptr returns nil for the zero time, for JSON fields that are null until set.
func (t Time) Ptr() *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// At converts a time.Time, truncated to milliseconds.
func At(t time.Time) Time {
	if t.IsZero() {
		return Time{}
	}
	return Time{t.UTC().Truncate(time.Millisecond)}
}

// NewID returns a random identifier that sorts by creation time: 16 hex
// digits of Unix nanoseconds followed by 8 random hex digits.
func NewID() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("store: crypto/rand failed: " + err.Error())
	}
	return fmt.Sprintf("%016x%s", time.Now().UnixNano(), hex.EncodeToString(b[:]))
}

// isUnique reports whether err is a unique-constraint violation.
func isUnique(err error) bool {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		if isUnique(err) {
			return ErrConflict
		}
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// bump increments the state version inside tx and appends the change to
// the change log: the organization whose snapshot part must be reloaded,
// and whether the provider zone's content may have changed (then the zone
// version, the zone's SOA serial, becomes the new version).
func bump(ctx context.Context, tx *sqlx.Tx, orgID string, zone bool) error {
	q := `UPDATE state_version SET version = version + 1 WHERE id = 1 RETURNING version`
	if zone {
		q = `UPDATE state_version SET version = version + 1, zone_version = version + 1 WHERE id = 1 RETURNING version`
	}
	var v int64
	now := time.Now().UnixMilli()
	if tx.DriverName() == "postgres" {
		// One round trip: the change is appended by the statement that
		// takes the version (SQLite has no UPDATE in a WITH clause).
		q = `WITH v AS (` + q + `) INSERT INTO state_changes (version, org_id, zone, at)
			SELECT version, CAST($1 AS TEXT), CAST($2 AS BOOLEAN), CAST($3 AS BIGINT) FROM v RETURNING version`
		if err := tx.GetContext(ctx, &v, q, orgID, zone, now); err != nil {
			return fmt.Errorf("store: bump state version: %w", err)
		}
	} else {
		if err := tx.GetContext(ctx, &v, q); err != nil {
			return fmt.Errorf("store: bump state version: %w", err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO state_changes (version, org_id, zone, at) VALUES (?, ?, ?, ?)`),
			v, orgID, zone, now); err != nil {
			return fmt.Errorf("store: append state change: %w", err)
		}
	}
	if v%changeLogTrimEvery == 0 {
		// Instances further behind than the retained log load everything.
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM state_changes WHERE at < ? AND version < ?`),
			now-changeLogRetention.Milliseconds(), v-changeLogTrimEvery); err != nil {
			return fmt.Errorf("store: trim state changes: %w", err)
		}
	}
	return nil
}

// The change log keeps at least changeLogRetention of changes, trimmed
// every changeLogTrimEvery versions.
const (
	changeLogRetention = time.Hour
	changeLogTrimEvery = 1000
)

// Version returns the state version: it changes whenever data that the
// policy snapshot or the DNS zone depend on changes, in any process.
func (s *Store) Version(ctx context.Context) (int64, error) {
	var v int64
	if err := s.db.GetContext(ctx, &v, `SELECT version FROM state_version WHERE id = 1`); err != nil {
		return 0, fmt.Errorf("store: read state version: %w", err)
	}
	return v, nil
}

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// affected returns ErrNotFound when res changed no row.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
