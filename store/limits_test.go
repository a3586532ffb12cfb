package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// TestLimitsReachTheSnapshot: limits set over the API are in the state an
// instance loads, incrementally (the write bumped the version for the
// organization), and they go with their account or organization.
func TestLimitsReachTheSnapshot(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme := newOrg(t, s, "acme")
		now := store.At(time.Now())
		a := store.Account{ID: store.NewID(), OrgID: acme.ID, Name: "app", Username: "app@acme", PasswordHash: "h", CreatedAt: now, UpdatedAt: now}
		if err := s.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		v, err := s.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ev := store.Event{OrgID: acme.ID, Subject: "limits", Kind: "limits.changed", At: now}
		for _, r := range []store.LimitRow{
			{OrgID: acme.ID, PerHour: 100, UpdatedAt: now},
			{OrgID: acme.ID, AccountID: a.ID, PerMinute: 5, UpdatedAt: now},
			{OrgID: acme.ID, AccountID: a.ID, PerMinute: 6, PerDay: 60, UpdatedAt: now}, // replaces the one before
		} {
			if err := s.SetLimits(ctx, r, ev); err != nil {
				t.Fatal(err)
			}
		}
		other := newOrg(t, s, "other")
		if err := s.SetLimits(ctx, store.LimitRow{OrgID: other.ID, AccountID: a.ID, UpdatedAt: now}, ev); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("limits for another organization's account: %v, want ErrNotFound", err)
		}
		st, err := s.LoadState(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		if st.Full || len(st.Limits) != 2 {
			t.Fatalf("incremental load: full %v, limits %+v", st.Full, st.Limits)
		}
		for _, r := range st.Limits {
			if (r.AccountID == "" && r.PerHour != 100) || (r.AccountID == a.ID && (r.PerMinute != 6 || r.PerDay != 60)) {
				t.Errorf("loaded %+v", r)
			}
		}
		if len(st.Accounts) != 1 || st.Accounts[0].CreatedAt.UnixMilli() != now.UnixMilli() {
			t.Errorf("accounts %+v, want app with its creation time", st.Accounts)
		}

		if err := s.DeleteAccount(ctx, acme.ID, "app"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Limits(ctx, acme.ID, a.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("limits of a deleted account: %v", err)
		}
		if err := s.DeleteOrg(ctx, acme.ID); err != nil {
			t.Fatal(err)
		}
		if rows, err := s.OrgLimitRows(ctx, acme.ID); err != nil || len(rows) != 0 {
			t.Errorf("limits of a deleted organization: %+v %v", rows, err)
		}
	})
}
