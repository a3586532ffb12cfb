package store_test

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// stateOrg fills an organization with one row of every kind the state
// holds: an account with limits of its own, the organization's limits, a
// restricted domain granted to the account with its next key published,
// a retired key and a BYOK one, and a confirmed address.
func stateOrg(t *testing.T, s *store.Store, name string) (store.Org, store.Domain) {
	t.Helper()
	ctx := context.Background()
	o := newOrg(t, s, name)
	now := store.At(time.Now())
	a := store.Account{ID: store.NewID(), OrgID: o.ID, Name: "app", Username: "app@" + name, PasswordHash: "h", CreatedAt: now, UpdatedAt: now}
	if err := s.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	ev := store.Event{OrgID: o.ID, Subject: "x", Kind: "x", At: now}
	for _, r := range []store.LimitRow{{OrgID: o.ID, PerHour: 100, UpdatedAt: now}, {OrgID: o.ID, AccountID: a.ID, PerMinute: 5, PerDay: 50, UpdatedAt: now}} {
		if err := s.SetLimits(ctx, r, ev); err != nil {
			t.Fatal(err)
		}
	}
	d := store.Domain{ID: store.NewID(), OrgID: o.ID, Name: "mail." + name + ".example", Token: store.NewID(), Status: "verified",
		ReturnPath: "bounce", DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: pemKey(t), DMARCPolicy: "quarantine",
		DMARCRUA: "mailto:d@" + name + ".example", DMARCPct: 50, Records: "[]", CreatedAt: now, VerifiedAt: now}
	next := store.DKIMKey{Selector: "sg1b", Algorithm: "ed25519", PrivateKey: pemKey(t), CreatedAt: now}
	if err := s.CreateDomainWithNext(ctx, d, next, ev); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAccess(ctx, d.ID, true, []string{a.ID}, ev); err != nil {
		t.Fatal(err)
	}
	ks, err := s.DKIMKeys(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	var active string
	for _, k := range ks {
		if k.State == store.KeyActive {
			active = k.ID
		}
	}
	own := store.DKIMKey{Selector: "own", Algorithm: "ed25519", PrivateKey: pemKey(t), CreatedAt: now}
	if err := s.ActivateBYOKKey(ctx, d, active, own, now, store.At(time.Now().Add(time.Hour)), nil); err != nil {
		t.Fatal(err)
	}
	addr := store.Address{ID: store.NewID(), OrgID: o.ID, Email: "news@" + d.Name, Domain: d.Name, Status: "pending", TokenHash: "t", CreatedAt: now}
	if err := s.CreateAddress(ctx, addr, ev); err != nil {
		t.Fatal(err)
	}
	confirmed := addr
	confirmed.Status, confirmed.TokenHash, confirmed.ConfirmedAt = "confirmed", "", now
	if err := s.UpdateAddress(ctx, addr, confirmed, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.DomainByID(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	return o, got
}

// onlyOrgs keeps the rows of st that belong to the organizations ids, in
// one order, for comparing a full read with an incremental one.
func onlyOrgs(st *store.State, ids []string) store.State {
	in := map[string]bool{}
	for _, id := range ids {
		in[id] = true
	}
	domainOrg := map[string]string{}
	for _, d := range st.Domains {
		domainOrg[d.ID] = d.OrgID
	}
	keep := func(org string) bool { return in[org] }
	out := store.State{Version: st.Version, ZoneVersion: st.ZoneVersion,
		OrgRows:   filterRows(st.OrgRows, func(r store.OrgRow) bool { return keep(r.ID) }),
		Accounts:  filterRows(st.Accounts, func(r store.AccountRow) bool { return keep(r.OrgID) }),
		Grants:    filterRows(st.Grants, func(r store.Grant) bool { return keep(domainOrg[r.DomainID]) }),
		Keys:      filterRows(st.Keys, func(r store.KeyRow) bool { return keep(domainOrg[r.DomainID]) }),
		Confirmed: filterRows(st.Confirmed, func(r store.AddressRow) bool { return keep(r.OrgID) }),
		Limits:    filterRows(st.Limits, func(r store.LimitRow) bool { return keep(r.OrgID) }),
	}
	for _, r := range st.Domains {
		if keep(r.OrgID) {
			r.DKIMKey = "" // only an incremental read carries private keys
			out.Domains = append(out.Domains, r)
		}
	}
	slices.SortFunc(out.OrgRows, func(a, b store.OrgRow) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(out.Accounts, func(a, b store.AccountRow) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(out.Domains, func(a, b store.DomainRow) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(out.Grants, func(a, b store.Grant) int { return cmp.Compare(a.DomainID+a.AccountID, b.DomainID+b.AccountID) })
	slices.SortFunc(out.Keys, func(a, b store.KeyRow) int { return cmp.Compare(a.DomainID+a.Selector, b.DomainID+b.Selector) })
	slices.SortFunc(out.Confirmed, func(a, b store.AddressRow) int { return cmp.Compare(a.OrgID+a.Email, b.OrgID+b.Email) })
	slices.SortFunc(out.Limits, func(a, b store.LimitRow) int { return cmp.Compare(a.OrgID+a.AccountID, b.OrgID+b.AccountID) })
	return out
}

// TestLoadStateIncrementalMatchesFull: the incremental read of the
// organizations changed since a version has exactly their rows of a full
// read at the same version (every kind of row, private keys besides),
// lists a deleted organization with no rows, in the order of their first
// change, and nothing else; nothing changed reads nothing; a version ahead
// of the database reads everything.
func TestLoadStateIncrementalMatchesFull(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme, acmeDomain := stateOrg(t, s, "acme")
		other, _ := stateOrg(t, s, "other")
		gone, _ := stateOrg(t, s, "gone")
		stateOrg(t, s, "untouched")
		since, err := s.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		now := store.At(time.Now())
		ev := store.Event{OrgID: other.ID, Subject: "x", Kind: "x", At: now}
		if err := s.SetLimits(ctx, store.LimitRow{OrgID: other.ID, PerDay: 7, UpdatedAt: now}, ev); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteOrg(ctx, gone.ID); err != nil {
			t.Fatal(err)
		}
		ev.OrgID = acme.ID
		if err := s.SetAccess(ctx, acmeDomain.ID, false, nil, ev); err != nil {
			t.Fatal(err)
		}

		inc, err := s.LoadState(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		if inc.Full {
			t.Fatalf("LoadState(%d) read everything, want the changed organizations", since)
		}
		if want := []string{other.ID, gone.ID, acme.ID}; !slices.Equal(inc.Orgs, want) {
			t.Fatalf("Orgs = %v, want %v (other, gone, acme: the order of their first change)", inc.Orgs, want)
		}
		full, err := s.LoadState(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !full.Full || full.Version != inc.Version || full.ZoneVersion != inc.ZoneVersion {
			t.Fatalf("full read: Full %v, versions %d/%d; incremental %d/%d", full.Full, full.Version, full.ZoneVersion, inc.Version, inc.ZoneVersion)
		}
		for _, d := range inc.Domains {
			if d.DKIMKey == "" {
				t.Errorf("incremental read of domain %s: no private key", d.Name)
			}
		}
		got, want := onlyOrgs(inc, inc.Orgs), onlyOrgs(full, inc.Orgs)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("incremental rows differ from the full read's:\n got %+v\nwant %+v", got, want)
		}
		if len(got.OrgRows) != 2 || len(got.Accounts) != 2 || len(got.Domains) != 4 || len(got.Grants) != 1 ||
			len(got.Keys) != 4 || len(got.Confirmed) != 2 || len(got.Limits) != 4 {
			t.Fatalf("incremental read: %d orgs, %d accounts, %d domains, %d grants, %d keys, %d confirmed, %d limits; "+
				"want 2, 2, 4 (with the sandboxes), 1 (other's; acme's domain is unrestricted now), 4 (next and retired of each), 2, 4",
				len(got.OrgRows), len(got.Accounts), len(got.Domains), len(got.Grants), len(got.Keys), len(got.Confirmed), len(got.Limits))
		}
		// The grant of a domain restricted again is read too.
		var acmeAccount string
		for _, a := range inc.Accounts {
			if a.OrgID == acme.ID {
				acmeAccount = a.ID
			}
		}
		if err := s.SetAccess(ctx, acmeDomain.ID, true, []string{acmeAccount}, ev); err != nil {
			t.Fatal(err)
		}
		inc2, err := s.LoadState(ctx, inc.Version)
		if err != nil {
			t.Fatal(err)
		}
		if len(inc2.Orgs) != 1 || len(inc2.Grants) != 1 || inc2.Grants[0] != (store.Grant{DomainID: acmeDomain.ID, AccountID: acmeAccount}) {
			t.Fatalf("after restricting: Orgs %v, grants %+v; want acme's one grant", inc2.Orgs, inc2.Grants)
		}

		same, err := s.LoadState(ctx, inc2.Version)
		if err != nil {
			t.Fatal(err)
		}
		if same.Full || len(same.Orgs) != 0 || same.Version != inc2.Version || same.ZoneVersion != inc2.ZoneVersion || len(same.Domains) != 0 {
			t.Fatalf("nothing changed: %+v, want no rows at version %d", same, inc2.Version)
		}
		ahead, err := s.LoadState(ctx, inc2.Version+10)
		if err != nil {
			t.Fatal(err)
		}
		if !ahead.Full || len(ahead.OrgRows) != 3 {
			t.Fatalf("version ahead of the database: Full %v, %d orgs; want a full read of 3", ahead.Full, len(ahead.OrgRows))
		}
	})
}

// BenchmarkLoadStateChanged: the reload after one write in one of 50
// organizations (20 domains each), as an instance's Changed does it.
func BenchmarkLoadStateChanged(b *testing.B) {
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			s := storetest.SQLite(b)
			if db == "postgres" {
				s = storetest.Postgres(b)
			}
			ctx := context.Background()
			now := store.At(time.Now())
			var orgs []store.Org
			for i := range 50 {
				o := store.Org{ID: store.NewID(), Name: fmt.Sprintf("o%d", i), SandboxDomain: fmt.Sprintf("o%d.sandbox", i), CreatedAt: now}
				sb := store.Domain{ID: store.NewID(), OrgID: o.ID, Name: o.SandboxDomain, Sandbox: true, Token: store.NewID(), Status: "verified",
					DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: "k", DKIMTXT: "-", Records: "[]", CreatedAt: now}
				if err := s.CreateOrg(ctx, o, sb); err != nil {
					b.Fatal(err)
				}
				for j := range 20 {
					d := store.Domain{ID: store.NewID(), OrgID: o.ID, Name: fmt.Sprintf("d%d.o%d.example", j, i), Token: store.NewID(), Status: "verified",
						DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: "k", DKIMTXT: "v=DKIM1; p=x", Records: "[]", CreatedAt: now}
					next := store.DKIMKey{Selector: "sg1b", Algorithm: "ed25519", PrivateKey: "k", TXT: "v=DKIM1; p=y", CreatedAt: now}
					if err := s.CreateDomainWithNext(ctx, d, next, store.Event{OrgID: o.ID, Subject: "x", Kind: "x", At: now}); err != nil {
						b.Fatal(err)
					}
				}
				orgs = append(orgs, o)
			}
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				o := orgs[i%len(orgs)]
				since, err := s.Version(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.SetLimits(ctx, store.LimitRow{OrgID: o.ID, PerDay: int64(i + 1), UpdatedAt: now}, store.Event{OrgID: o.ID, Subject: "x", Kind: "x", At: now}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				st, err := s.LoadState(ctx, since)
				if err != nil || len(st.Domains) != 21 {
					b.Fatalf("LoadState: %v, %d domains, want 21", err, len(st.Domains))
				}
			}
		})
	}
}

// TestFullLoadConsistentUnderWrites: while domains with a next key are
// added (domain and key in one transaction), every full load is one
// state: each domain its next key, no key without its domain (a load
// reading the keys apart from the domains would break this).
func TestFullLoadConsistentUnderWrites(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		org := newOrg(t, s, "acme")
		key := pemKey(t)
		done := make(chan struct{})
		writerErr := make(chan error, 1)
		go func() {
			defer close(writerErr)
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				now := store.At(time.Now())
				d := store.Domain{ID: store.NewID(), OrgID: org.ID, Name: fmt.Sprintf("d%d.example", i), Token: store.NewID(), Status: "verified",
					DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: key, Records: "[]", CreatedAt: now}
				next := store.DKIMKey{ID: store.NewID(), Selector: "sg1b", Algorithm: "ed25519", PrivateKey: key, CreatedAt: now}
				if err := s.CreateDomainWithNext(ctx, d, next, store.Event{OrgID: org.ID, Subject: "domain:" + d.Name, Kind: "domain.added", At: now}); err != nil {
					writerErr <- err
					return
				}
			}
		}()
		for range 40 {
			st, err := s.LoadState(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			domains := map[string]bool{}
			for _, d := range st.Domains {
				if d.OrgID == org.ID && !d.Sandbox { // the sandbox domain has no next key
					domains[d.ID] = true
				}
			}
			withKey := map[string]bool{}
			for _, k := range st.Keys {
				if !domains[k.DomainID] {
					t.Fatalf("version %d: a key of domain %s, which the load does not have", st.Version, k.DomainID)
				}
				withKey[k.DomainID] = true
			}
			if len(withKey) != len(domains) {
				t.Fatalf("version %d: %d domains, %d of them with their next key", st.Version, len(domains), len(withKey))
			}
		}
		close(done)
		if err := <-writerErr; err != nil {
			t.Fatal(err)
		}
	})
}

// filterRows returns the rows of rows that keep accepts, in order.
func filterRows[T any](rows []T, keep func(T) bool) []T {
	var out []T
	for _, r := range rows {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}
