package gate_test

import (
	"context"
	"testing"
	"time"

	"github.com/sendergate/sendergate/gate"
	"github.com/sendergate/sendergate/limits"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// limited returns a gate on f's engine and clock with a limiter over f's
// store and the given config defaults.
func (f *fixture) limited(d limits.Defaults) *gate.Gate {
	l := limits.New(f.st, limits.Options{Now: f.clock.Now})
	return gate.New(f.engine, f.st, gate.Options{Hostname: "submit.test", SandboxLimit: 100, Now: f.clock.Now, Limiter: l, Limits: d})
}

// setLimits stores limits for the organization (account nil) or an
// account and applies them to the snapshot, as the API does.
func (f *fixture) setLimits(t *testing.T, acct *store.Account, v limits.Values) {
	t.Helper()
	row := store.LimitRow{OrgID: f.org.ID, PerMinute: v[limits.Minute], PerHour: v[limits.Hour], PerDay: v[limits.Day], UpdatedAt: store.At(time.Now())}
	if acct != nil {
		row.AccountID = acct.ID
	}
	if err := f.st.SetLimits(context.Background(), row, store.Event{OrgID: f.org.ID, Subject: "limits", Kind: "limits.changed", At: row.UpdatedAt}); err != nil {
		t.Fatal(err)
	}
	if err := f.engine.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) account(t *testing.T, name string) store.Account {
	t.Helper()
	a, err := f.st.AccountByName(context.Background(), f.org.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// rcpts asks for n recipients one at a time and returns how many were
// admitted and the first refusal.
func rcpts(g *gate.Gate, env *gate.Envelope, n int) (int, *gate.Refusal) {
	for i := range n {
		if _, ref := g.Recipients(context.Background(), env, 1); ref != nil {
			return i, ref
		}
	}
	return n, nil
}

func TestRecipientsAccountLimit(t *testing.T) {
	f := newFixture(t, storetest.SQLite(t), 10)
	g := f.limited(limits.Defaults{})
	f.setLimits(t, &f.app, limits.Values{limits.Minute: 5})
	env := f.envelope()
	if n, ref := rcpts(g, env, 5); n != 5 {
		t.Fatalf("admitted %d of 5: %v", n, ref)
	}
	_, ref := g.Recipients(context.Background(), env, 1)
	want := "451 4.7.0 sending limit reached for account app@acme: 5 recipients per minute; it frees up at 2026-11-25 23:59:00 UTC (in 1m0s)"
	if ref == nil || ref.Error() != want || !ref.Temporary() {
		t.Fatalf("sixth recipient: %v, want %q", ref, want)
	}
	billing := f.account(t, "billing")
	if n, ref := rcpts(g, &gate.Envelope{Username: billing.Username, AccountID: billing.ID}, 20); n != 20 {
		t.Errorf("another account of the organization: %d of 20 (%v)", n, ref)
	}
	f.clock.Add(time.Minute)
	if n, ref := rcpts(g, env, 6); n != 5 || ref == nil {
		t.Errorf("next minute: %d admitted, then %v; want 5, then a refusal", n, ref)
	}
}

func TestRecipientsReleased(t *testing.T) {
	f := newFixture(t, storetest.SQLite(t), 10)
	g := f.limited(limits.Defaults{Account: limits.Values{limits.Hour: 3}})
	env := f.envelope()
	var tx gate.Hold
	for range 3 {
		h, ref := g.Recipients(context.Background(), env, 1)
		if ref != nil {
			t.Fatal(ref)
		}
		tx.Add(h)
	}
	if _, ref := g.Recipients(context.Background(), env, 1); ref == nil {
		t.Fatal("a fourth recipient passed the default account_per_hour of 3")
	}
	g.Release(tx) // the transaction's DATA was refused
	if n, ref := rcpts(g, env, 4); n != 3 {
		t.Errorf("after the release: %d admitted (%v), want the 3 given back", n, ref)
	}
	g.Release(gate.Hold{}) // nothing held: nothing happens
}

func TestRecipientsOrganizationLimit(t *testing.T) {
	f := newFixture(t, storetest.SQLite(t), 10)
	g := f.limited(limits.Defaults{Org: limits.Values{limits.Day: 1000}})
	f.setLimits(t, nil, limits.Values{limits.Hour: 4}) // replaces the default whole
	billing := f.account(t, "billing")
	if n, _ := rcpts(g, f.envelope(), 3); n != 3 {
		t.Fatalf("app: %d of 3", n)
	}
	n, ref := rcpts(g, &gate.Envelope{Username: billing.Username, AccountID: billing.ID}, 3)
	want := "451 4.7.0 sending limit reached for organization acme: 4 recipients per hour; it frees up at 2026-11-26 00:00:00 UTC (in 2m0s)"
	if n != 1 || ref == nil || ref.Error() != want {
		t.Errorf("billing: %d admitted, then %v; want 1 (the organization's last), then %q", n, ref, want)
	}
	// A change of the limits is in force at the next recipient.
	f.setLimits(t, nil, limits.Values{limits.Hour: 10})
	if n, _ := rcpts(g, f.envelope(), 10); n != 6 {
		t.Errorf("raised to 10: %d more admitted, want 6", n)
	}
}

func TestRecipientsNewAccount(t *testing.T) {
	f := newFixture(t, storetest.SQLite(t), 10)
	g := f.limited(limits.Defaults{Account: limits.Values{limits.Day: 100}, NewAccountPerDay: 2, NewAccountAge: 7 * 24 * time.Hour})
	created := store.At(f.clock.Now().Add(-time.Hour))
	fresh := store.Account{ID: store.NewID(), OrgID: f.org.ID, Name: "fresh", Username: "fresh@acme", PasswordHash: policy.HashPassword("fresh-password-0123456789"), CreatedAt: created, UpdatedAt: created}
	if err := f.st.CreateAccount(context.Background(), fresh); err != nil {
		t.Fatal(err)
	}
	if err := f.engine.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, ref := rcpts(g, &gate.Envelope{Username: fresh.Username}, 5)
	if n != 2 || ref == nil || ref.Code != 451 {
		t.Errorf("an account an hour old: %d admitted, then %v; want 2 (new_account_per_day), then 451", n, ref)
	}
	f.clock.Add(8 * 24 * time.Hour)
	if n, _ := rcpts(g, &gate.Envelope{Username: fresh.Username}, 5); n != 5 {
		t.Errorf("eight days later: %d of 5 admitted", n)
	}
}

func TestRecipientsWithoutLimiter(t *testing.T) {
	f := newFixture(t, storetest.SQLite(t), 10)
	if n, ref := rcpts(f.gate, f.envelope(), 50); n != 50 {
		t.Errorf("no limiter: %d of 50 admitted (%v)", n, ref)
	}
	// An account the snapshot does not know is left to the message stage.
	g := f.limited(limits.Defaults{Account: limits.Values{1, 1, 1}})
	if _, ref := g.Recipients(context.Background(), &gate.Envelope{Username: "ghost@acme"}, 1); ref != nil {
		t.Errorf("unknown account at RCPT: %v, want nothing (refused at end of data)", ref)
	}
}
