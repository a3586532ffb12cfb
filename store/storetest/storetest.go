// Package storetest opens migrated, throw-away stores for tests: a SQLite
// file in a temporary directory and, when a PostgreSQL server is reachable,
// a fresh schema in it. ForEach runs a test against both, so every behaviour
// is checked on both dialects.
//
// The PostgreSQL server is taken from SENDERGATE_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable). When it is
// unreachable the PostgreSQL half is skipped with a notice, except with
// CI=true, where that is a failure.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/lib/pq" // PostgreSQL driver for schema set-up

	"github.com/sendergate/sendergate/store"
)

// DefaultPostgres is the server used when SENDERGATE_TEST_POSTGRES is unset.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// PostgresURL returns the base URL of the test PostgreSQL server.
func PostgresURL() string {
	if u := os.Getenv("SENDERGATE_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultPostgres
}

// ForEach runs fn as a subtest "sqlite" and a subtest "postgres", each with
// its own freshly migrated store.
func ForEach(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// SQLite returns a migrated store in a new temporary file.
func SQLite(t testing.TB) *store.Store {
	t.Helper()
	return OpenSQLite(t, filepath.Join(t.TempDir(), "test.db"))
}

// OpenSQLite returns a migrated store on the SQLite file path, closed when
// the test ends; a second call on the same path is a second process's
// handle on the same data.
func OpenSQLite(t testing.TB, path string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), "sqlite", path)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate sqlite: %v", err)
	}
	return s
}

// Postgres returns a migrated store in a new schema of the test server,
// dropped when the test ends.
func Postgres(t testing.TB) *store.Store {
	t.Helper()
	return OpenPostgres(t, PostgresDSN(t))
}

// OpenPostgres returns a migrated store on dsn (from PostgresDSN, perhaps
// through a forwarder), closed when the test ends; a second call on the
// same dsn is a second process's handle on the same data.
func OpenPostgres(t testing.TB, dsn string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), "postgres", dsn)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate postgres: %v", err)
	}
	return s
}

// PostgresDSN creates an empty schema on the test server and returns a DSN
// whose search_path points at it; the schema is dropped at cleanup. It skips
// (or, with CI=true, fails) when the server cannot be reached.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := PostgresURL()
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatalf("postgres url: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is required in CI: %v", base, err)
		}
		t.Skipf("NOTICE: PostgreSQL half skipped, %s unreachable: %v", base, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "sgtest_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("postgres url: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
