package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

func newOrg(t *testing.T, s *store.Store, name string) store.Org {
	t.Helper()
	now := store.At(time.Now())
	o := store.Org{ID: store.NewID(), Name: name, SandboxDomain: name + ".sandbox.sg.localhost", CreatedAt: now}
	sb := store.Domain{ID: store.NewID(), OrgID: o.ID, Name: o.SandboxDomain, Sandbox: true, Token: store.NewID(), Status: "verified",
		DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048", DKIMKey: "k", Records: "[]", CreatedAt: now, VerifiedAt: now}
	if err := s.CreateOrg(context.Background(), o, sb); err != nil {
		t.Fatalf("CreateOrg(%s): %v", name, err)
	}
	return o
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		n, err := s.Migrate(context.Background())
		if err != nil {
			t.Fatalf("second migrate: %v", err)
		}
		if n != 0 {
			t.Errorf("second migrate applied %d migrations, want 0", n)
		}
	})
}

func TestOrgsAccountsKeys(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme := newOrg(t, s, "acme")
		other := newOrg(t, s, "other")

		dup := store.Org{ID: store.NewID(), Name: "acme", SandboxDomain: "x.sandbox", CreatedAt: store.At(time.Now())}
		err := s.CreateOrg(ctx, dup, store.Domain{ID: store.NewID(), OrgID: dup.ID, Name: "x.sandbox", Token: store.NewID(), Status: "verified", Records: "[]"})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate org: err = %v, want ErrConflict", err)
		}
		if orgs, _ := s.ListOrgs(ctx); len(orgs) != 2 {
			t.Fatalf("ListOrgs = %d orgs, want 2 (failed insert must leave nothing)", len(orgs))
		}

		now := store.At(time.Now())
		a := store.Account{ID: store.NewID(), OrgID: acme.ID, Name: "billing", Username: "billing@acme", PasswordHash: "h1", CreatedAt: now, UpdatedAt: now}
		if err := s.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		a2 := a
		a2.ID = store.NewID()
		if err := s.CreateAccount(ctx, a2); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate account: %v", err)
		}
		// Same name in another org is fine.
		b := store.Account{ID: store.NewID(), OrgID: other.ID, Name: "billing", Username: "billing@other", PasswordHash: "h2", CreatedAt: now, UpdatedAt: now}
		if err := s.CreateAccount(ctx, b); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AccountByName(ctx, other.ID, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing account: %v", err)
		}
		if err := s.SetAccountPassword(ctx, acme.ID, "billing", "h3", now); err != nil {
			t.Fatal(err)
		}
		got, err := s.AccountByName(ctx, acme.ID, "billing")
		if err != nil || got.PasswordHash != "h3" {
			t.Fatalf("after rotate: %+v %v", got, err)
		}
		// Deleting in the wrong org changes nothing.
		if err := s.DeleteAccount(ctx, other.ID, "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete missing: %v", err)
		}

		k := store.APIKey{ID: store.NewID(), OrgID: acme.ID, Hash: "kh", CreatedAt: now}
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAPIKey(ctx, other.ID, k.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete other org's key: %v", err)
		}
		if _, err := s.APIKeyByID(ctx, k.ID); err != nil {
			t.Fatalf("key gone after foreign delete: %v", err)
		}

		v1, _ := s.Version(ctx)
		if err := s.DeleteOrg(ctx, acme.ID); err != nil {
			t.Fatal(err)
		}
		if v2, _ := s.Version(ctx); v2 <= v1 {
			t.Errorf("version did not grow on delete: %d -> %d", v1, v2)
		}
		if _, err := s.APIKeyByID(ctx, k.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("key survived org deletion: %v", err)
		}
		if accts, _ := s.AllAccounts(ctx); len(accts) != 1 || accts[0].OrgID != other.ID {
			t.Errorf("accounts after delete = %+v", accts)
		}
	})
}

func TestDomainsGrantsEvents(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme := newOrg(t, s, "acme")
		other := newOrg(t, s, "other")
		now := store.At(time.Now())
		acct := store.Account{ID: store.NewID(), OrgID: acme.ID, Name: "app", Username: "app@acme", PasswordHash: "h", CreatedAt: now, UpdatedAt: now}
		if err := s.CreateAccount(ctx, acct); err != nil {
			t.Fatal(err)
		}
		d := store.Domain{ID: store.NewID(), OrgID: acme.ID, Name: "example.com", Token: "tok1", Status: "pending",
			DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048", DKIMKey: "pem", Records: "[]", CreatedAt: now}
		ev := store.Event{OrgID: acme.ID, Subject: "domain:example.com", Kind: "domain.added", At: now}
		if err := s.CreateDomain(ctx, d, ev); err != nil {
			t.Fatal(err)
		}
		d2 := d
		d2.ID, d2.Token = store.NewID(), "tok2"
		if err := s.CreateDomain(ctx, d2, ev); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate domain: %v", err)
		}
		d3 := d2
		d3.OrgID, d3.Token = other.ID, "tok3"
		if err := s.CreateDomain(ctx, d3, store.Event{OrgID: other.ID, Subject: "domain:example.com", Kind: "domain.added", At: now}); err != nil {
			t.Fatalf("same name in another org: %v", err)
		}

		upd := d
		upd.Status, upd.History, upd.VerifiedAt = "verified", "o", now
		if err := s.UpdateDomainCheck(ctx, d, upd, []store.Event{{OrgID: acme.ID, Subject: "domain:example.com", Kind: "domain.verified", At: now}}); err != nil {
			t.Fatal(err)
		}
		// A stale writer loses.
		if err := s.UpdateDomainCheck(ctx, d, upd, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale update: %v", err)
		}
		if ok, _ := s.VerifiedElsewhere(ctx, "example.com", other.ID); !ok {
			t.Error("VerifiedElsewhere = false, want true for the other org")
		}
		if ok, _ := s.VerifiedElsewhere(ctx, "example.com", acme.ID); ok {
			t.Error("VerifiedElsewhere = true for the owner")
		}

		if err := s.SetAccess(ctx, d.ID, true, []string{acct.ID}, store.Event{OrgID: acme.ID, Subject: "domain:example.com", Kind: "domain.access", At: now}); err != nil {
			t.Fatal(err)
		}
		names, _ := s.DomainGrants(ctx, d.ID)
		if len(names) != 1 || names[0] != "app" {
			t.Fatalf("grants = %v", names)
		}
		if err := s.DeleteAccount(ctx, acme.ID, "app"); err != nil {
			t.Fatal(err)
		}
		if names, _ := s.DomainGrants(ctx, d.ID); len(names) != 0 {
			t.Errorf("grants survive account deletion: %v", names)
		}

		evs, err := s.Events(ctx, acme.ID, "domain:example.com")
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, e := range evs {
			kinds = append(kinds, e.Kind)
		}
		if len(kinds) != 3 || kinds[0] != "domain.added" || kinds[1] != "domain.verified" || kinds[2] != "domain.access" {
			t.Errorf("events = %v", kinds)
		}
		if err := s.DeleteDomain(ctx, other.ID, "missing.example", ev); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("delete missing domain: %v", err)
		}
		// The sandbox domain cannot be deleted through DeleteDomain.
		if err := s.DeleteDomain(ctx, acme.ID, acme.SandboxDomain, ev); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("delete sandbox domain: %v", err)
		}
		if err := s.DeleteDomain(ctx, acme.ID, "example.com", ev); err != nil {
			t.Fatal(err)
		}
		all, _ := s.AllDomains(ctx)
		if len(all) != 3 { // two sandboxes + other's example.com
			t.Errorf("AllDomains = %d, want 3", len(all))
		}
	})
}

func TestAddressTokenSingleUse(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme := newOrg(t, s, "acme")
		now := store.At(time.Now())
		a := store.Address{ID: store.NewID(), OrgID: acme.ID, Email: "a@example.com", Domain: "example.com", Status: "pending",
			TokenHash: "h1", TokenExpiresAt: store.At(now.Add(time.Hour)), CreatedAt: now}
		if err := s.CreateAddress(ctx, a, store.Event{OrgID: acme.ID, Subject: "address:a@example.com", Kind: "address.added", At: now}); err != nil {
			t.Fatal(err)
		}
		got, err := s.AddressByTokenHash(ctx, "h1")
		if err != nil || got.Email != "a@example.com" {
			t.Fatalf("by token: %+v %v", got, err)
		}
		c := got
		c.Status, c.TokenHash, c.ConfirmedAt = "confirmed", "", now
		if err := s.UpdateAddress(ctx, got, c, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateAddress(ctx, got, c, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second use: %v", err)
		}
		conf, _ := s.ConfirmedAddresses(ctx)
		if len(conf) != 1 {
			t.Errorf("confirmed = %d", len(conf))
		}
	})
}

func TestSandboxCounterConcurrent(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme := newOrg(t, s, "acme")
		const limit, tries = 10, 40
		var wg sync.WaitGroup
		var mu sync.Mutex
		allowed := 0
		for i := 0; i < tries; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.IncrSandbox(ctx, acme.ID, "2026-11-25", 1, limit)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if allowed != limit {
			t.Errorf("allowed %d of %d, want exactly %d", allowed, tries, limit)
		}
		if n, _ := s.SandboxCount(ctx, acme.ID, "2026-11-25"); n != limit {
			t.Errorf("count = %d", n)
		}
		if ok, _ := s.IncrSandbox(ctx, acme.ID, "2026-11-26", 1, limit); !ok {
			t.Error("next day refused")
		}
	})
}
