package store_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"

	"github.com/sendergate/sendergate/migrations"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

var queueT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// queueDomain stores a verified domain of a new organization whose next
// check is next (zero: none).
func queueDomain(t *testing.T, s *store.Store, name string, next time.Time) store.Domain {
	t.Helper()
	ctx := context.Background()
	now := store.At(queueT0.Add(-24 * time.Hour))
	org := store.Org{ID: store.NewID(), Name: name, SandboxDomain: name + ".sandbox.sg.localhost", CreatedAt: now}
	sb := store.Domain{ID: store.NewID(), OrgID: org.ID, Name: org.SandboxDomain, Sandbox: true, Token: store.NewID(), Status: "verified",
		DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: "sandbox-private-key", Records: "[]", CreatedAt: now, VerifiedAt: now}
	if err := s.CreateOrg(ctx, org, sb); err != nil {
		t.Fatalf("CreateOrg(%s): %v", name, err)
	}
	d := store.Domain{ID: store.NewID(), OrgID: org.ID, Name: name + ".example", Token: store.NewID(), Status: "verified",
		DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: "PRIVATE KEY OF " + name, Records: `[{"purpose":"dkim"}]`, History: "o",
		CreatedAt: now, VerifiedAt: now, LastCheckedAt: now, NextCheckAt: store.At(next)}
	if err := s.CreateDomain(ctx, d, store.Event{OrgID: org.ID, Subject: "domain:" + d.Name, Kind: "domain.added", At: now}); err != nil {
		t.Fatalf("CreateDomain(%s): %v", d.Name, err)
	}
	return d
}

func leaseNames(ds []store.Domain) string {
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
	}
	return strings.Join(names, ",")
}

// TestCheckQueueLease: due rows are leased earliest first, in bounded
// batches, without their private key; a leased row is not leased again
// until its lease runs out; rows planned later, sandbox domains and rows
// with no next check are never due. None of it bumps the state version.
func TestCheckQueueLease(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		queueDomain(t, s, "second", queueT0.Add(-time.Minute))
		first := queueDomain(t, s, "first", queueT0.Add(-2*time.Minute))
		later := queueDomain(t, s, "later", queueT0.Add(time.Hour))
		queueDomain(t, s, "never", time.Time{})
		v0, err := s.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}

		if e, err := s.EarliestCheck(ctx); err != nil || !e.Equal(queueT0.Add(-2*time.Minute)) {
			t.Fatalf("EarliestCheck = %v, %v; want %v", e, err, queueT0.Add(-2*time.Minute))
		}
		lease := queueT0.Add(5 * time.Minute)
		got, err := s.LeaseDueChecks(ctx, queueT0, lease, 1)
		if err != nil {
			t.Fatal(err)
		}
		if leaseNames(got) != "first.example" {
			t.Fatalf("first lease = %s, want first.example", leaseNames(got))
		}
		d := got[0]
		// The token (public: it is in the customer's DNS) says what the
		// zone serves at the CNAME targets; the private key is never read.
		if d.DKIMKey != "" || d.Token != first.Token {
			t.Errorf("leased row: private key %q (want none), token %q (want %q)", d.DKIMKey, d.Token, first.Token)
		}
		if d.ID != first.ID || d.Status != "verified" || d.History != "o" || d.Records != first.Records ||
			!d.NextCheckAt.Equal(queueT0.Add(-2*time.Minute)) || !d.LastCheckedAt.Equal(first.LastCheckedAt.Time) {
			t.Errorf("leased row = %+v; want what a check reads, NextCheckAt the time it was due", d)
		}
		got, err = s.LeaseDueChecks(ctx, queueT0, lease, 10)
		if err != nil || leaseNames(got) != "second.example" {
			t.Fatalf("second lease = %s, %v; want only second.example (first is leased)", leaseNames(got), err)
		}
		if got, err := s.LeaseDueChecks(ctx, queueT0, lease, 10); err != nil || len(got) != 0 {
			t.Fatalf("third lease = %s, %v; want nothing due", leaseNames(got), err)
		}
		if e, _ := s.EarliestCheck(ctx); !e.Equal(lease) {
			t.Errorf("EarliestCheck during the leases = %v, want their end %v", e, lease)
		}

		// Giving a lease back needs the lease; the second time it is gone.
		if ok, err := s.RescheduleCheck(ctx, first.ID, store.At(lease), store.At(queueT0.Add(30*time.Minute))); !ok || err != nil {
			t.Errorf("RescheduleCheck = %v, %v; want done", ok, err)
		}
		if ok, err := s.RescheduleCheck(ctx, first.ID, store.At(lease), store.Time{}); ok || err != nil {
			t.Errorf("RescheduleCheck without the lease = %v, %v; want refused", ok, err)
		}
		// The lease of second runs out: it is due again, with later.
		got, err = s.LeaseDueChecks(ctx, queueT0.Add(time.Hour), queueT0.Add(time.Hour+5*time.Minute), 10)
		if err != nil || leaseNames(got) != "second.example,first.example,later.example" {
			t.Errorf("lease after an hour = %s, %v; want second (its lease ran out), first and later", leaseNames(got), err)
		}
		if v, _ := s.Version(ctx); v != v0 {
			t.Errorf("state version %d -> %d: leasing changes nothing a snapshot holds", v0, v)
		}

		// Saving a check ends the lease with the planned next check.
		upd := got[2]
		upd.LastCheckedAt, upd.NextCheckAt = store.At(queueT0.Add(time.Hour)), store.At(queueT0.Add(2*time.Hour))
		if err := s.UpdateDomainCheck(ctx, got[2], upd, nil); err != nil {
			t.Fatal(err)
		}
		stored, err := s.DomainByName(ctx, later.OrgID, later.Name)
		if err != nil || !stored.NextCheckAt.Equal(queueT0.Add(2*time.Hour)) || stored.DKIMKey != later.DKIMKey {
			t.Errorf("after the check: next %v (%v), key kept %v", stored.NextCheckAt, err, stored.DKIMKey == later.DKIMKey)
		}
	})
}

// TestCheckQueueIndexed: on SQLite, the queries of a round read the
// next_check_at index, not the table (on PostgreSQL the planner decides by
// table size).
func TestCheckQueueIndexed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	s, err := store.Open(context.Background(), "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`SELECT next_check_at FROM domains WHERE next_check_at IS NOT NULL ORDER BY next_check_at LIMIT 1`,
		`SELECT id FROM domains WHERE next_check_at <= 5 ORDER BY next_check_at LIMIT 256`,
	} {
		p := store.QueryPlan(t, db, q)
		if !strings.Contains(p, "domains_next_check") || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("%s: plan %q; want the domains_next_check index, no sort", q, p)
		}
	}
}

// TestCheckQueueMigration: migration 2 schedules the domains that exist
// before it at their last check (or creation) and leaves sandbox domains
// unscheduled, on both dialects.
func TestCheckQueueMigration(t *testing.T) {
	for _, tc := range []struct {
		dialect goose.Dialect
		open    func(t *testing.T) *sql.DB
	}{
		{goose.DialectSQLite3, func(t *testing.T) *sql.DB {
			db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "m.db"))
			if err != nil {
				t.Fatal(err)
			}
			return db
		}},
		{goose.DialectPostgres, func(t *testing.T) *sql.DB {
			db, err := sql.Open("postgres", storetest.PostgresDSN(t))
			if err != nil {
				t.Fatal(err)
			}
			return db
		}},
	} {
		t.Run(string(tc.dialect), func(t *testing.T) {
			ctx := context.Background()
			db := tc.open(t)
			defer db.Close()
			p, err := goose.NewProvider(tc.dialect, db, migrations.FS)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(ctx, 1); err != nil {
				t.Fatal(err)
			}
			ph := func(q string) string {
				if tc.dialect == goose.DialectPostgres {
					return sqlx.Rebind(sqlx.DOLLAR, q)
				}
				return q
			}
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := db.ExecContext(ctx, ph(q), args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			exec(`INSERT INTO orgs (id, name, sandbox_domain, created_at) VALUES ('o1', 'acme', 'acme.sandbox.z', 1000)`)
			ins := `INSERT INTO domains (id, org_id, name, sandbox, token, status, dkim_selector, dkim_algorithm, dkim_key, created_at, last_checked_at)
				VALUES (?, 'o1', ?, ?, ?, ?, 'sg1', 'ed25519', 'k', ?, ?)`
			exec(ins, "sb", "acme.sandbox.z", true, "t0", "verified", int64(1000), nil)
			exec(ins, "checked", "checked.example", false, "t1", "verified", int64(2000), int64(5000))
			exec(ins, "fresh", "fresh.example", false, "t2", "pending", int64(3000), nil)
			if _, err := p.UpTo(ctx, 2); err != nil {
				t.Fatalf("migration 2: %v", err)
			}
			want := map[string]sql.NullInt64{"sb": {}, "checked": {Int64: 5000, Valid: true}, "fresh": {Int64: 3000, Valid: true}}
			for id, w := range want {
				var got sql.NullInt64
				if err := db.QueryRowContext(ctx, ph(`SELECT next_check_at FROM domains WHERE id = ?`), id).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != w {
					t.Errorf("%s: next_check_at = %v, want %v", id, got, w)
				}
			}
			if _, err := p.DownTo(ctx, 1); err != nil {
				t.Errorf("migration 2 down: %v", err)
			}
		})
	}
}
