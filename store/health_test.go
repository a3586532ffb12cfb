package store_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/sendergate/sendergate/internal/tcpfwd"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

func TestIsUnavailableClassifies(t *testing.T) {
	// A real refused dial: a port that was free a moment ago.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, dialErr := net.Dial("tcp", addr)
	if dialErr == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"not found", fmt.Errorf("store: org: %w", store.ErrNotFound), false},
		{"conflict", store.ErrConflict, false},
		{"no rows", sql.ErrNoRows, false},
		{"canceled by the client", context.Canceled, false},
		{"plain error", errors.New("store: records: invalid character"), false},
		{"unique violation", &pq.Error{Code: "23505"}, false},
		{"syntax error", &pq.Error{Code: "42601"}, false},
		{"connection refused", fmt.Errorf("store: read state version: %w", dialErr), true},
		{"bad connection", fmt.Errorf("store: begin: %w", driver.ErrBadConn), true},
		{"connection done", sql.ErrConnDone, true},
		{"deadline", fmt.Errorf("store: x: %w", context.DeadlineExceeded), true},
		{"server shutting down", &pq.Error{Code: "57P01"}, true},
		{"server starting up", &pq.Error{Code: "57P03"}, true},
		{"too many connections", &pq.Error{Code: "53300"}, true},
		{"connection failure", &pq.Error{Code: "08006"}, true},
		{"query canceled", &pq.Error{Code: "57014"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := store.IsUnavailable(tc.err); got != tc.want {
				t.Errorf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// TestUnavailableSQLiteFile: a database path that cannot be opened (here
// a directory) is unavailability, not an internal error.
func TestUnavailableSQLiteFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := store.Open(context.Background(), "sqlite", dir)
	if err == nil {
		t.Fatal("opened a directory as a database")
	}
	if !store.IsUnavailable(err) {
		t.Errorf("IsUnavailable(%v) = false", err)
	}
}

// TestPostgresGoneAndBack cuts the connection to a real PostgreSQL: every
// query fails as unavailable and Ping fails; once it is back, the same
// Store works again without being reopened.
func TestPostgresGoneAndBack(t *testing.T) {
	fwd, dsn := tcpfwd.Target(t, storetest.PostgresDSN(t))
	ctx := context.Background()
	s := storetest.OpenPostgres(t, dsn)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if _, err := s.OrgByName(ctx, "ghost"); store.IsUnavailable(err) || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing org while up: %v (unavailable %v)", err, store.IsUnavailable(err))
	}

	fwd.Cut()
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Ping(qctx); err == nil || !store.IsUnavailable(err) {
		t.Errorf("ping while cut: %v", err)
	}
	if _, err := s.Version(qctx); err == nil || !store.IsUnavailable(err) {
		t.Errorf("query while cut: %v", err)
	}
	if _, err := s.OrgByName(qctx, "ghost"); errors.Is(err, store.ErrNotFound) || !store.IsUnavailable(err) {
		t.Errorf("org lookup while cut: %v, want unavailable (never not found)", err)
	}
	if err := s.CreateAPIKey(qctx, store.APIKey{ID: store.NewID(), OrgID: "x", Hash: "h", CreatedAt: store.At(time.Now())}); !store.IsUnavailable(err) {
		t.Errorf("write while cut: %v", err)
	}

	fwd.Restore()
	if err := s.Ping(ctx); err != nil {
		t.Errorf("ping after restore: %v", err)
	}
	if _, err := s.Version(ctx); err != nil {
		t.Errorf("query after restore: %v", err)
	}
}
