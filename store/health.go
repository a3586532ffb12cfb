package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/lib/pq"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Ping checks that the database answers now (a round trip on a pooled or a
// new connection). database/sql reconnects by itself, so a Ping that fails
// while the server is down succeeds again once it is back.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping %s: %w", s.dialect, err)
	}
	return nil
}

// IsUnavailable reports whether err means the database could not be
// reached or could not serve the request right now (the request itself was
// not at fault): a refused or broken connection, a timeout, a server that
// is shutting down or out of connections, a busy or unopenable SQLite file.
// Callers answer those with "try again later" (HTTP 503, SMTP 4xx) instead
// of an authentication or internal error. Ordinary errors (no rows, a
// constraint, a syntax error) are not unavailability.
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, sql.ErrNoRows) {
		return false
	}
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return true
	}
	// Dial and I/O failures (*net.OpError), unresolvable hosts
	// (*net.DNSError) and timeouts all satisfy net.Error.
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		return pqUnavailable(string(pe.Code))
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // the primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR,
			sqlite3.SQLITE_FULL, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOLFS:
			return true
		}
	}
	return false
}

// pqUnavailable reports whether a PostgreSQL SQLSTATE means the server
// cannot serve now: class 08 (connection exception), 53 (insufficient
// resources: too many connections, out of memory or disk), 57P01-57P05
// (shutting down, starting up, idle session timeout) and 58 (system error).
func pqUnavailable(code string) bool {
	if len(code) != 5 {
		return false
	}
	switch code[:2] {
	case "08", "53", "58":
		return true
	case "57":
		return code >= "57P01" && code <= "57P05"
	}
	return false
}
