package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// TestSuppressionRules: hard bounces and complaints suppress at once, soft
// bounces at the soft limit within the window; events are recorded;
// changes, tombstones and expiry reach the sync feed; manual entries never
// expire; another organization sees nothing.
func TestSuppressionRules(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme := newOrg(t, s, "acme")
		other := newOrg(t, s, "other")
		rules := store.SuppressionRules{SoftLimit: 3, SoftWindow: time.Hour, TTL: 24 * time.Hour}
		t0 := time.Now()
		cases := []struct {
			name, email, kind string
			times             int
			want              []bool
		}{
			{"hard", "hard@example.com", "hard", 2, []bool{true, false}},
			{"complaint", "c@example.com", "complaint", 1, []bool{true}},
			{"soft", "soft@example.com", "soft", 4, []bool{false, false, true, false}},
		}
		for _, c := range cases {
			for i := 0; i < c.times; i++ {
				f := store.Feedback{OrgID: acme.ID, Email: c.email, Domain: "acme.example", MessageID: "m1", Status: "5.1.1", Diagnostic: "user unknown", At: t0}
				got, err := s.RecordFeedback(ctx, f, c.kind, rules)
				if err != nil {
					t.Fatal(err)
				}
				if got != c.want[i] {
					t.Errorf("%s #%d: suppressed now %v, want %v", c.name, i, got, c.want[i])
				}
			}
		}
		e, err := s.Suppression(ctx, acme.ID, "hard@example.com")
		if err != nil || e.Reason != store.ReasonBounce || e.Count != 2 || e.Status != "5.1.1" || e.ExpiresAt.IsZero() {
			t.Errorf("hard entry %+v %v", e, err)
		}
		if _, err := s.Suppression(ctx, other.ID, "hard@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("other org: %v", err)
		}
		evs, err := s.Events(ctx, acme.ID, "hard@example.com")
		if err != nil || len(evs) != 3 || evs[0].Kind != "message.bounced" {
			t.Errorf("events %+v %v", evs, err)
		}
		list, err := s.ListSuppressions(ctx, acme.ID, store.ReasonBounce, "", 1)
		if err != nil || len(list) != 1 || list[0].Email != "hard@example.com" {
			t.Errorf("page 1 %+v %v", list, err)
		}
		list, err = s.ListSuppressions(ctx, acme.ID, store.ReasonBounce, "hard@example.com", 10)
		if err != nil || len(list) != 1 || list[0].Email != "soft@example.com" {
			t.Errorf("page 2 %+v %v", list, err)
		}
		if _, created, err := s.PutSuppression(ctx, acme.ID, "m@example.com", t0); err != nil || !created {
			t.Errorf("put: %v %v", created, err)
		}
		if err := s.DeleteSuppression(ctx, acme.ID, "c@example.com"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSuppression(ctx, acme.ID, "c@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("delete twice: %v", err)
		}
		n, err := s.ExpireSuppressions(ctx, t0.Add(25*time.Hour), time.Hour)
		if err != nil || n != 2 {
			t.Errorf("expired %d %v, want 2 (manual kept)", n, err)
		}
		if _, err := s.Suppression(ctx, acme.ID, "m@example.com"); err != nil {
			t.Errorf("manual entry expired: %v", err)
		}
		ch, err := s.SuppressionChanges(ctx, 0, 100)
		if err != nil || len(ch) != 4 {
			t.Fatalf("changes %+v %v", ch, err)
		}
		live := 0
		for i, c := range ch {
			if i > 0 && c.Seq <= ch[i-1].Seq {
				t.Errorf("seq not increasing")
			}
			if !c.Deleted {
				live++
			}
		}
		if live != 1 {
			t.Errorf("live after expiry %d, want 1", live)
		}
		more, err := s.SuppressionChanges(ctx, ch[len(ch)-1].Seq, 100)
		if err != nil || len(more) != 0 {
			t.Errorf("changes after last %+v %v", more, err)
		}
	})
}

// TestUnattributedComplaint: a complaint that names no recipient becomes a
// message.complained delivery naming the message, and suppresses nobody.
func TestUnattributedComplaint(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme := newOrg(t, s, "acme")
		now := time.Now()
		if err := s.CreateWebhook(ctx, store.Webhook{ID: store.NewID(), OrgID: acme.ID, URL: "https://a.example/h",
			Events: `["message.complained","recipient.suppressed"]`, Secret: "s1", CreatedAt: store.At(now)}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordUnattributedComplaint(ctx, store.Feedback{OrgID: acme.ID, Email: "ignored@example.com", Domain: "acme.example",
			MessageID: "0123456789abcdef", At: now}); err != nil {
			t.Fatal(err)
		}
		ds, err := s.LeaseDueDeliveries(ctx, "one", now.Add(time.Second), now.Add(time.Minute), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].Event != "message.complained" || !strings.Contains(ds[0].Payload, `"message_id":"0123456789abcdef"`) ||
			!strings.Contains(ds[0].Payload, `"email":""`) {
			t.Fatalf("deliveries %+v, want one message.complained naming the message and no address", ds)
		}
		if l, err := s.ListSuppressions(ctx, acme.ID, "", "", 10); err != nil || len(l) != 0 {
			t.Fatalf("suppressions %+v %v, want none", l, err)
		}
	})
}
