package gate_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/gate"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
	"github.com/sendergate/sendergate/suppress"
)

// listAdapter is how serve adapts the suppression list to the gate.
type listAdapter struct{ l *suppress.List }

func (a listAdapter) Suppressed(orgID, email string) (string, string, bool) {
	e, ok := a.l.Lookup(orgID, email)
	if !ok {
		return "", "", false
	}
	return e.Reason, e.Text("http://127.0.0.1:8025", orgID), true
}

// TestRecipientsSuppressed: a recipient the organization suppressed (a
// manual entry in the real store, synced into the real in-memory list)
// gets 550 5.1.1 at RCPT with a text naming how to lift it, whatever the
// case or brackets it is given in; others pass; after the removal and a
// sync it passes too. Another organization's suppression changes nothing.
func TestRecipientsSuppressed(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st, 10)
		list := suppress.NewList(st, nil)
		g := gate.New(f.engine, st, gate.Options{Hostname: "submit.test", SandboxLimit: 100, Now: f.clock.Now,
			Suppressions: listAdapter{list}})
		if _, _, err := st.PutSuppression(ctx, f.org.ID, "dead@example.net", time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := list.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		for _, rcpt := range []string{"dead@example.net", "<DEAD@Example.NET>"} {
			_, ref := g.Recipients(ctx, f.envelope(rcpt), 1)
			if ref == nil || ref.Code != 550 || ref.Enhanced != [3]int{5, 1, 1} || !strings.Contains(ref.Text, "DELETE") {
				t.Fatalf("RCPT %s: %v, want 550 5.1.1 naming the DELETE that lifts it", rcpt, ref)
			}
		}
		if _, ref := g.Recipients(ctx, f.envelope("alive@example.net"), 1); ref != nil {
			t.Fatalf("unsuppressed recipient refused: %v", ref)
		}
		if ref := g.Suppressed(f.envelope("dead@example.net")); ref == nil {
			t.Fatal("Suppressed (the policy service's check) let a suppressed recipient through")
		}
		if err := st.DeleteSuppression(ctx, f.org.ID, "dead@example.net"); err != nil {
			t.Fatal(err)
		}
		if err := list.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ref := g.Recipients(ctx, f.envelope("dead@example.net"), 1); ref != nil {
			t.Fatalf("after DELETE and a sync: %v", ref)
		}
	})
}
