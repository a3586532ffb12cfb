package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// TestWebhookEventsEnqueueDeliveries: a webhook event written by addEvent
// creates one delivery per subscribed webhook, leased once.
func TestWebhookEventsEnqueueDeliveries(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme := newOrg(t, s, "acme")
		now := time.Now()
		for _, w := range []store.Webhook{
			{ID: store.NewID(), OrgID: acme.ID, URL: "https://a.example/h", Events: `["domain.verified"]`, Secret: "s1", CreatedAt: store.At(now)},
			{ID: store.NewID(), OrgID: acme.ID, URL: "https://b.example/h", Events: `["address.confirmed"]`, Secret: "s2", CreatedAt: store.At(now)},
		} {
			if err := s.CreateWebhook(ctx, w); err != nil {
				t.Fatal(err)
			}
		}
		for _, ev := range []store.Event{
			{OrgID: acme.ID, Subject: "domain:example.com", Kind: "domain.verified", At: store.At(now)},
			{OrgID: acme.ID, Subject: "domain:example.com", Kind: "domain.checked", At: store.At(now)},
		} {
			if err := s.AddEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		ds, err := s.LeaseDueDeliveries(ctx, "one", now.Add(time.Second), now.Add(time.Minute), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].Event != "domain.verified" || !strings.Contains(ds[0].Payload, `"domain":"example.com"`) || !strings.Contains(ds[0].Payload, `"org":"acme"`) {
			t.Fatalf("deliveries %+v, want one domain.verified for example.com", ds)
		}
		again, err := s.LeaseDueDeliveries(ctx, "two", now.Add(2*time.Second), now.Add(time.Minute), 10)
		if err != nil || len(again) != 0 {
			t.Fatalf("second lease: %v %+v, want none", err, again)
		}
		ok, err := s.FinishAttempt(ctx, ds[0].ID, "one", store.DeliveryDelivered, 200, "", now, time.Time{})
		if err != nil || !ok {
			t.Fatalf("finish: %v %v", ok, err)
		}
		got, err := s.Deliveries(ctx, ds[0].WebhookID, 100)
		if err != nil || len(got) != 1 || got[0].Status != store.DeliveryDelivered || got[0].Attempts != 1 {
			t.Fatalf("deliveries %+v %v", got, err)
		}
	})
}

// TestLeaseIsFairAcrossWebhooks: a webhook with a backlog older than
// another's delivery does not fill the whole batch: a round takes every
// webhook's oldest delivery before anyone's second.
func TestLeaseIsFairAcrossWebhooks(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		busy, quiet := newOrg(t, s, "busy"), newOrg(t, s, "quiet")
		start := time.Now().Add(-time.Hour)
		hooks := map[string]string{}
		for _, o := range []store.Org{busy, quiet} {
			w := store.Webhook{ID: store.NewID(), OrgID: o.ID, URL: "https://" + o.Name + ".example/h", Events: `["domain.verified"]`, Secret: "s", CreatedAt: store.At(start)}
			if err := s.CreateWebhook(ctx, w); err != nil {
				t.Fatal(err)
			}
			hooks[w.ID] = o.Name
		}
		for i := range 60 {
			ev := store.Event{OrgID: busy.ID, Subject: "domain:example.com", Kind: "domain.verified", At: store.At(start.Add(time.Duration(i) * time.Second))}
			if err := s.AddEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddEvent(ctx, store.Event{OrgID: quiet.ID, Subject: "domain:example.org", Kind: "domain.verified", At: store.At(start.Add(10 * time.Minute))}); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		ds, err := s.LeaseDueDeliveries(ctx, "one", now, now.Add(time.Minute), 50)
		if err != nil {
			t.Fatal(err)
		}
		per := map[string]int{}
		for _, d := range ds {
			per[hooks[d.WebhookID]]++
		}
		if len(ds) != 50 || per["quiet"] != 1 || per["busy"] != 49 {
			t.Fatalf("leased %d: %v, want the quiet webhook's delivery beside 49 of the busy one's", len(ds), per)
		}
		rest, err := s.LeaseDueDeliveries(ctx, "two", now, now.Add(time.Minute), 50)
		if err != nil || len(rest) != 11 {
			t.Fatalf("second lease: %d %v, want the 11 left", len(rest), err)
		}
	})
}
