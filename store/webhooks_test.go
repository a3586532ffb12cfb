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
