package webhooks_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sendergate/sendergate/internal/clocktest"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
	"github.com/sendergate/sendergate/webhooks"
)

// TestRetrySchedule follows a delivery to a receiver that always answers
// 500, moving the clock to each next attempt, as docs/webhooks.md states
// it: waits of 30 s doubling to 1 h (plus at most 10 % jitter), attempts
// only within 24 h of the event, then failed with the last status kept.
func TestRetrySchedule(t *testing.T) {
	s := storetest.SQLite(t)
	start := time.Now().Truncate(time.Second)
	clock := clocktest.New(start)
	var mu sync.Mutex
	var at []time.Time
	rc := newReceiver(t, map[string]string{"/h": "whsec_s"}, clock.Now, func(*http.Request) int {
		mu.Lock()
		at = append(at, clock.Now())
		mu.Unlock()
		return 500
	})
	org := newOrg(t, s)
	wh := newWebhook(t, s, org, rc.URL+"/h", "whsec_s")
	verified(t, s, org, "example.com", start)
	d := webhooks.New(webhooks.Options{Store: s, AllowPrivate: true, Now: clock.Now})
	var last store.Delivery
	for i := 0; i < 100; i++ {
		if n, err := d.RunOnce(context.Background()); err != nil || n != 1 {
			t.Fatalf("round %d: attempted %d (%v), want 1", i, n, err)
		}
		ds, err := s.Deliveries(context.Background(), wh.ID, 1)
		if err != nil || len(ds) != 1 {
			t.Fatalf("deliveries %+v %v", ds, err)
		}
		last = ds[0]
		if last.Status != store.DeliveryPending {
			break
		}
		clock.Set(last.NextAttemptAt.Time)
	}
	if last.Status != store.DeliveryFailed || last.LastStatusCode != 500 || last.Attempts != len(at) {
		t.Fatalf("final delivery %+v after %d requests, want failed with 500", last, len(at))
	}
	if n := len(at); n < 28 || n > 30 {
		t.Errorf("%d attempts, want 28 to 30 (about 30 over 24 h)", n)
	}
	if end := at[len(at)-1]; end.Sub(start) > webhooks.Retention {
		t.Errorf("last attempt %v after the event, past the 24 h retention", end.Sub(start))
	}
	wait := 30 * time.Second
	for i := 1; i < len(at); i++ {
		if got := at[i].Sub(at[i-1]); got < wait || got > wait+wait/10 {
			t.Errorf("wait before attempt %d = %v, want %v plus at most 10 %%", i+1, got, wait)
		}
		wait = min(2*wait, time.Hour)
	}
}
