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
	db      *sqlx.DB
	dialect string // "sqlite" or "postgres"
}

// Open connects to the database named by driver ("sqlite" or "postgres") and
// dsn. For SQLite, dsn is a file path; its directory is created (0700) and
// the connection is set up with foreign keys, WAL and a busy timeout.
func Open(ctx context.Context, driverName, dsn string) (*Store, error) {
	var (
		db  *sqlx.DB
		err error
	)
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
	case "postgres":
		db, err = sqlx.Open("postgres", dsn)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(10)
		db.SetConnMaxIdleTime(5 * time.Minute)
	default:
		return nil, fmt.Errorf("store: unknown driver %q", driverName)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect to %s: %w", driverName, err)
	}
	return &Store{db: db, dialect: driverName}, nil
}

// Dialect reports "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

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

// bump increments the state version inside tx.
func bump(ctx context.Context, tx *sqlx.Tx) error {
	if _, err := tx.ExecContext(ctx, `UPDATE state_version SET version = version + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("store: bump state version: %w", err)
	}
	return nil
}

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
