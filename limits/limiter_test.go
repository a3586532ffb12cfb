package limits_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/internal/clocktest"
	"github.com/sendergate/sendergate/internal/tcpfwd"
	"github.com/sendergate/sendergate/limits"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// t0 is 14:09:10 UTC: 50 s before the minute frees up.
var t0 = time.Date(2026, 3, 14, 14, 9, 10, 0, time.UTC)

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

// sender is one account of an organization with the limits that apply.
type sender struct {
	org      store.Org
	id, name string
	acct     limits.Values
	orgL     limits.Values
}

func (s sender) scopes() []limits.Scope {
	return []limits.Scope{
		{Kind: limits.Account, ID: s.id, OrgID: s.org.ID, Name: s.name + "@" + s.org.Name, Limits: s.acct},
		{Kind: limits.Organization, ID: s.org.ID, OrgID: s.org.ID, Name: s.org.Name, Limits: s.orgL},
	}
}

// admitN admits one recipient at a time, up to n, and returns how many
// were admitted and the first refusal.
func admitN(l *limits.Limiter, s sender, n int) (int, *limits.Refused) {
	for i := range n {
		if _, ref := l.Admit(context.Background(), s.scopes(), 1); ref != nil {
			return i, ref
		}
	}
	return n, nil
}

func newLimiter(st limits.Store, clock *clocktest.Clock) *limits.Limiter {
	return limits.New(st, limits.Options{Now: clock.Now})
}

func TestAccountPerMinute(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		clock := clocktest.New(t0)
		l := newLimiter(st, clock)
		org := newOrg(t, st, "acme")
		app := sender{org: org, id: "a1", name: "app", acct: limits.Values{limits.Minute: 5}}
		other := sender{org: org, id: "a2", name: "other"}

		if n, ref := admitN(l, app, 5); n != 5 {
			t.Fatalf("admitted %d of the first 5 (refusal %+v)", n, ref)
		}
		_, ref := l.Admit(context.Background(), app.scopes(), 1)
		if ref == nil {
			t.Fatal("the sixth recipient in the minute was admitted")
		}
		want := "sending limit reached for account app@acme: 5 recipients per minute; it frees up at 2026-03-14 14:10:00 UTC (in 50s)"
		if got := ref.Text(clock.Now()); got != want {
			t.Errorf("refusal text %q, want %q", got, want)
		}
		if n, ref := admitN(l, other, 20); n != 20 {
			t.Errorf("another account of the organization: %d of 20 admitted (%+v)", n, ref)
		}
		if err := l.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, ref := l.Admit(context.Background(), app.scopes(), 1); ref == nil {
			t.Error("after a sync the minute's limit was forgotten")
		}
		clock.Set(time.Date(2026, 3, 14, 14, 10, 0, 0, time.UTC))
		if n, ref := admitN(l, app, 6); n != 5 || ref == nil || !ref.Frees.Equal(time.Date(2026, 3, 14, 14, 11, 0, 0, time.UTC)) {
			t.Errorf("next minute: admitted %d (want 5), then %+v (want a refusal freeing at 14:11)", n, ref)
		}
	})
}

func TestOrganizationLimitShared(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		l := newLimiter(st, clocktest.New(t0))
		org := newOrg(t, st, "acme")
		orgL := limits.Values{limits.Hour: 8}
		app := sender{org: org, id: "a1", name: "app", orgL: orgL}
		other := sender{org: org, id: "a2", name: "other", orgL: orgL}
		rival := sender{org: newOrg(t, st, "rival"), id: "r1", name: "app", orgL: orgL}
		if n, _ := admitN(l, app, 5); n != 5 {
			t.Fatalf("app: %d of 5", n)
		}
		n, ref := admitN(l, other, 5)
		if n != 3 || ref == nil || ref.Kind != limits.Organization || ref.Window != limits.Hour {
			t.Fatalf("other: admitted %d (want the 3 left), refusal %+v (want the organization's hour)", n, ref)
		}
		if !strings.Contains(ref.Text(t0), "organization acme: 8 recipients per hour") {
			t.Errorf("text %q does not name the organization and its window", ref.Text(t0))
		}
		if n, _ := admitN(l, rival, 8); n != 8 {
			t.Errorf("another organization: %d of 8 admitted", n)
		}
	})
}

func TestMessageAdmittedWholeOrNot(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		l := newLimiter(st, clocktest.New(t0))
		app := sender{org: newOrg(t, st, "acme"), id: "a1", name: "app", acct: limits.Values{limits.Day: 5}}
		ctx := context.Background()
		if _, ref := l.Admit(ctx, app.scopes(), 3); ref != nil {
			t.Fatal(ref)
		}
		if _, ref := l.Admit(ctx, app.scopes(), 3); ref == nil {
			t.Fatal("3 more admitted with 2 left")
		}
		if _, ref := l.Admit(ctx, app.scopes(), 2); ref != nil {
			t.Fatalf("the 2 left were not admitted after a refused 3: %+v", ref)
		}
		if _, ref := l.Admit(ctx, app.scopes(), 1); ref == nil {
			t.Fatal("admitted past the limit")
		}
	})
}

func TestReleaseGivesBack(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l := newLimiter(st, clocktest.New(t0))
		app := sender{org: newOrg(t, st, "acme"), id: "a1", name: "app", acct: limits.Values{limits.Hour: 4}}
		var tx limits.Reservation
		for range 3 {
			r, ref := l.Admit(ctx, app.scopes(), 1)
			if ref != nil {
				t.Fatal(ref)
			}
			tx.Add(r)
		}
		// Settled first, then released: the store's count goes back down.
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		l.Release(tx)
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		// A second instance sees the released budget too.
		l2 := newLimiter(st, clocktest.New(t0))
		if n, _ := admitN(l2, app, 10); n != 4 {
			t.Errorf("after the release another instance admitted %d, want all 4", n)
		}
	})
}

// TestCountsSurviveRestart: the day's count is in the store, so a new
// instance (a restart) goes on from it, after a graceful stop and after a
// crash (nothing settled: what was admitted is still leased).
func TestCountsSurviveRestart(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		clock := clocktest.New(t0)
		org := newOrg(t, st, "acme")
		app := sender{org: org, id: "a1", name: "app", acct: limits.Values{limits.Day: 50}}
		l1 := newLimiter(st, clock)
		if n, _ := admitN(l1, app, 30); n != 30 {
			t.Fatalf("first run: %d of 30", n)
		}
		if err := l1.Close(ctx); err != nil {
			t.Fatal(err)
		}
		clock.Add(3 * time.Hour)
		l2 := newLimiter(st, clock)
		if n, ref := admitN(l2, app, 50); n != 20 || ref == nil || ref.Window != limits.Day {
			t.Errorf("after a restart: admitted %d (want the 20 left of the day), refusal %+v", n, ref)
		}

		crashed := sender{org: org, id: "a2", name: "crashed", acct: limits.Values{limits.Day: 50}}
		l3 := newLimiter(st, clock)
		if n, _ := admitN(l3, crashed, 10); n != 10 {
			t.Fatalf("before the crash: %d of 10", n)
		}
		if err := l3.Sync(ctx); err != nil { // a sync, then no Close: the process dies
			t.Fatal(err)
		}
		if n, _ := admitN(l3, crashed, 5); n != 5 {
			t.Fatalf("before the crash: %d of 5", n)
		}
		// The dead instance's slice was sized at its sync to twice what it
		// admitted in the interval before (10): up to 20, of which it used 5.
		l4 := newLimiter(st, clock)
		n, _ := admitN(l4, crashed, 50)
		if n > 35 || n < 35-20 {
			t.Errorf("after a crash: admitted %d, want the 35 left less at most the 20 the dead instance held unused", n)
		}
	})
}

// TestStoreDown: with the database cut, an instance admits from the slice
// it holds, then refuses with "cannot be checked" (fail closed), and is
// back to normal once the database is.
func TestStoreDown(t *testing.T) {
	fwd, dsn := tcpfwd.Target(t, storetest.PostgresDSN(t))
	ctx := context.Background()
	st := storetest.OpenPostgres(t, dsn)
	l := limits.New(st, limits.Options{Now: clocktest.New(t0).Now, Timeout: time.Second})
	app := sender{org: newOrg(t, st, "acme"), id: "a1", name: "app", acct: limits.Values{limits.Hour: 1000}}
	if n, _ := admitN(l, app, 20); n != 20 {
		t.Fatalf("%d of 20 admitted", n)
	}
	if err := l.Sync(ctx); err != nil { // the slice is sized to the last second's use
		t.Fatal(err)
	}
	fwd.Cut()
	n, ref := admitN(l, app, 1000)
	if n == 0 || n > 40 {
		t.Errorf("with the database cut: %d admitted, want the slice held (some, at most 2 × 20)", n)
	}
	if ref == nil || !ref.Unavailable || !strings.Contains(ref.Text(t0), "cannot be checked") {
		t.Fatalf("beyond the slice: %+v, want an unavailable refusal", ref)
	}
	if err := l.Sync(ctx); err == nil {
		t.Error("Sync with the database cut reported no error")
	}
	fwd.Restore()
	if err := l.Sync(ctx); err != nil {
		t.Fatalf("Sync after the database came back: %v", err)
	}
	if n, ref := admitN(l, app, 10); n != 10 {
		t.Errorf("database back: %d of 10 admitted (%+v)", n, ref)
	}
}

// TestStoreBackAfterIdle: an instance that found the store down and then
// forgot its idle counters notices at its next sync that the store is
// back, although it has nothing to settle.
func TestStoreBackAfterIdle(t *testing.T) {
	fwd, dsn := tcpfwd.Target(t, storetest.PostgresDSN(t))
	ctx := context.Background()
	st := storetest.OpenPostgres(t, dsn)
	clock := clocktest.New(t0)
	l := limits.New(st, limits.Options{Now: clock.Now, Timeout: time.Second})
	app := sender{org: newOrg(t, st, "acme"), id: "a1", name: "app", acct: limits.Values{limits.Day: 1000}}
	fwd.Cut()
	if _, ref := l.Admit(ctx, app.scopes(), 1); ref == nil || !ref.Unavailable {
		t.Fatalf("with the database cut and no slice: %+v, want unavailable", ref)
	}
	clock.Add(2 * time.Minute) // the counters go idle and are forgotten
	_ = l.Sync(ctx)
	fwd.Restore()
	if err := l.Sync(ctx); err != nil {
		t.Fatalf("Sync with the database back: %v", err)
	}
	if _, ref := l.Admit(ctx, app.scopes(), 1); ref != nil {
		t.Errorf("database back: %+v", ref)
	}
}

// TestLimitReachedOnce: the first refusal of a window is recorded as one
// limit.reached event, whichever instances refuse and however often.
func TestLimitReachedOnce(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		clock := clocktest.New(t0)
		org := newOrg(t, st, "acme")
		app := sender{org: org, id: "a1", name: "app", acct: limits.Values{limits.Minute: 2}}
		l1, l2 := newLimiter(st, clock), newLimiter(st, clock)
		admitN(l1, app, 5)
		admitN(l2, app, 5)
		for range 2 {
			for _, l := range []*limits.Limiter{l1, l2} {
				admitN(l, app, 3)
				if err := l.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		evs, err := st.RecentEvents(ctx, org.ID, "limits", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Kind != "limit.reached" ||
			evs[0].Detail != "account app@acme reached its limit of 2 recipients per minute (window 2026-03-14 14:09:00 to 14:10:00 UTC)" {
			t.Fatalf("events %+v, want one limit.reached naming the account, the limit and the window", evs)
		}
		clock.Add(time.Minute)
		admitN(l2, app, 3)
		if err := l2.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if evs, _ := st.RecentEvents(ctx, org.ID, "limits", 10); len(evs) != 2 {
			t.Errorf("the next window's first refusal: %d events, want 2", len(evs))
		}
	})
}

// TestDeletedOrganization: counters of an organization deleted while an
// instance holds them (its limit reached, an event to record) must not
// fail the settlement of every other organization.
func TestDeletedOrganization(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l := newLimiter(st, clocktest.New(t0))
		gone := sender{org: newOrg(t, st, "gone"), id: "g1", name: "app", acct: limits.Values{limits.Day: 1}}
		kept := sender{org: newOrg(t, st, "kept"), id: "k1", name: "app", acct: limits.Values{limits.Day: 10}}
		admitN(l, gone, 1)
		if err := st.DeleteOrg(ctx, gone.org.ID); err != nil {
			t.Fatal(err)
		}
		admitN(l, gone, 1) // refused: limit.reached for an organization that no longer exists
		admitN(l, kept, 4)
		if err := l.Close(ctx); err != nil { // settles and gives every slice back
			t.Fatalf("settling with a deleted organization's counters: %v", err)
		}
		if n, _ := admitN(newLimiter(st, clocktest.New(t0)), kept, 10); n != 6 {
			t.Errorf("another instance admitted %d for kept, want the 6 left: the settlement did not happen", n)
		}
	})
}

// TestLoweredLimit: a limit lowered below what was sent refuses once the
// slices held were settled.
func TestLoweredLimit(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l := newLimiter(st, clocktest.New(t0))
		app := sender{org: newOrg(t, st, "acme"), id: "a1", name: "app", acct: limits.Values{limits.Day: 100}}
		admitN(l, app, 10)
		app.acct[limits.Day] = 5
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ref := l.Admit(ctx, app.scopes(), 1); ref == nil || ref.Limit != 5 {
			t.Fatalf("after lowering the limit to 5 with 10 sent: %+v, want a refusal naming 5", ref)
		}
		app.acct = limits.Values{}
		if n, _ := admitN(l, app, 10); n != 10 {
			t.Errorf("limit removed: %d of 10", n)
		}
	})
}

func TestUsage(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		clock := clocktest.New(t0)
		org := newOrg(t, st, "acme")
		app := sender{org: org, id: "a1", name: "app", acct: limits.Values{limits.Minute: 3}}
		other := sender{org: org, id: "a2", name: "other"}
		l1, l2 := newLimiter(st, clock), newLimiter(st, clock)
		for range 5 { // 3 admitted, 2 refused
			l1.Admit(ctx, app.scopes(), 1)
		}
		admitN(l2, other, 4)
		if err := l2.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		scopes := append(app.scopes(), other.scopes()[0])
		us, err := l1.Usage(ctx, org.ID, scopes) // l1 has not synced: its own counts are local
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name    string
			u       limits.Usage
			minute  int64
			day     int64
			refused int64
		}{
			{name: "app", u: us[0], minute: 3, day: 3, refused: 2},
			{name: "organization", u: us[1], minute: 7, day: 7},
			{name: "other", u: us[2], minute: 4, day: 4},
		}
		for _, tt := range tests {
			if got := tt.u.Windows[limits.Minute].Count; got != tt.minute {
				t.Errorf("%s: minute count %d, want %d", tt.name, got, tt.minute)
			}
			if got := tt.u.Windows[limits.Day].Count; got != tt.day {
				t.Errorf("%s: day count %d, want %d", tt.name, got, tt.day)
			}
			if tt.u.RefusedToday != tt.refused {
				t.Errorf("%s: refused today %d, want %d", tt.name, tt.u.RefusedToday, tt.refused)
			}
		}
		if w := us[0].Windows[limits.Minute]; w.Limit != 3 || !w.End.Equal(time.Date(2026, 3, 14, 14, 10, 0, 0, time.UTC)) {
			t.Errorf("app minute window %+v, want limit 3 ending 14:10", w)
		}
	})
}
