package webhooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendergate/sendergate/internal/clocktest"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
	"github.com/sendergate/sendergate/webhooks"
)

func allDelivered(n int) func([]store.Delivery) bool {
	return func(ds []store.Delivery) bool {
		for _, d := range ds {
			if d.Status != store.DeliveryDelivered {
				return false
			}
		}
		return len(ds) == n
	}
}

// TestTwoDeliverersDeliverEachOnce: two Deliverers, each on its own handle
// on one database (two instances of the daemon), run at once over 50
// events for 2 webhooks; the receiver sees each of the 100 deliveries
// exactly once, correctly signed, and every row ends delivered.
func TestTwoDeliverersDeliverEachOnce(t *testing.T) {
	eachDatabase(t, func(t *testing.T, open func() *store.Store) {
		s1, s2 := open(), open()
		secrets := map[string]string{"/one": "whsec_one", "/two": "whsec_two"}
		rc := newReceiver(t, secrets, time.Now, nil)
		org := newOrg(t, s1)
		hooks := []store.Webhook{newWebhook(t, s1, org, rc.URL+"/one", "whsec_one"), newWebhook(t, s1, org, rc.URL+"/two", "whsec_two")}
		stop1 := runDeliverer(webhooks.New(webhooks.Options{Store: s1, AllowPrivate: true, Poll: 5 * time.Millisecond}))
		stop2 := runDeliverer(webhooks.New(webhooks.Options{Store: s2, AllowPrivate: true, Poll: 5 * time.Millisecond}))
		for i := range 50 {
			verified(t, s1, org, fmt.Sprintf("d%d.example.com", i), time.Now())
		}
		for _, h := range hooks {
			waitDeliveries(t, s2, h.ID, allDelivered(50))
		}
		stop1()
		stop2()

		seen := map[string]int{}
		for _, r := range rc.requests() {
			seen[r.path+" "+r.delivery]++
			var p struct{ ID, Type string }
			if !r.signed || json.Unmarshal([]byte(r.body), &p) != nil || p.ID != r.delivery || p.Type != "domain.verified" || r.event != "domain.verified" {
				t.Errorf("bad request %+v", r)
			}
		}
		for _, h := range hooks {
			ds, _ := s1.Deliveries(context.Background(), h.ID, 100)
			for _, d := range ds {
				key := h.URL[len(rc.URL):] + " " + d.ID
				if seen[key] != 1 || d.Attempts != 1 {
					t.Errorf("delivery %s: received %d times, %d attempts; want exactly once", key, seen[key], d.Attempts)
				}
			}
		}
		if len(seen) != 100 {
			t.Errorf("receiver saw %d distinct deliveries, want 100", len(seen))
		}
	})
}

// TestRestartResumesRetries: the receiver fails the first two attempts;
// the Deliverer is stopped and the database closed and reopened (a daemon
// restart); a new Deliverer, once the backoff has passed, delivers the
// same event (same id, same body) and the delivery reads 3 attempts,
// delivered, last status 200.
func TestRestartResumesRetries(t *testing.T) {
	eachDatabase(t, func(t *testing.T, open func() *store.Store) {
		clock := clocktest.New(time.Now().Truncate(time.Second))
		var code atomic.Int32
		code.Store(500)
		rc := newReceiver(t, map[string]string{"/h": "whsec_r"}, clock.Now, func(*http.Request) int { return int(code.Load()) })
		s := open()
		org := newOrg(t, s)
		wh := newWebhook(t, s, org, rc.URL+"/h", "whsec_r")
		verified(t, s, org, "example.com", clock.Now())

		stop := runDeliverer(webhooks.New(webhooks.Options{Store: s, AllowPrivate: true, Now: clock.Now, Poll: 5 * time.Millisecond}))
		for n := 1; n <= 2; n++ {
			ds := waitDeliveries(t, s, wh.ID, func(ds []store.Delivery) bool { return len(ds) == 1 && ds[0].Attempts == n })
			if d := ds[0]; d.Status != store.DeliveryPending || d.LastStatusCode != 500 || !d.NextAttemptAt.After(clock.Now()) {
				t.Fatalf("after attempt %d: %+v, want pending with a retry scheduled after a 500", n, d)
			}
			if n == 1 {
				clock.Add(2 * time.Minute) // past the first backoff (30 s + jitter)
			}
		}
		stop()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		code.Store(200)
		s = open()
		clock.Add(5 * time.Minute) // past the second backoff (1 min + jitter)
		stop = runDeliverer(webhooks.New(webhooks.Options{Store: s, AllowPrivate: true, Now: clock.Now, Poll: 5 * time.Millisecond}))
		defer stop()
		ds := waitDeliveries(t, s, wh.ID, allDelivered(1))
		if d := ds[0]; d.Attempts != 3 || d.LastStatusCode != 200 || d.LastError != "" || !d.DeliveredAt.Equal(clock.Now()) {
			t.Errorf("delivery %+v, want delivered at the third attempt with 200", d)
		}
		reqs := rc.requests()
		if len(reqs) != 3 {
			t.Fatalf("receiver saw %d requests, want 3", len(reqs))
		}
		for _, r := range reqs {
			if !r.signed || r.delivery != ds[0].ID || r.body != reqs[0].body {
				t.Errorf("request %+v: want the same signed delivery %s each time", r, ds[0].ID)
			}
		}
	})
}

// TestShutdownMidAttemptRedelivers: a Deliverer stopped while its POST is
// in flight records nothing; after a restart the delivery is attempted
// again once the stopped Deliverer's lease has run out (at least once).
func TestShutdownMidAttemptRedelivers(t *testing.T) {
	eachDatabase(t, func(t *testing.T, open func() *store.Store) {
		clock := clocktest.New(time.Now().Truncate(time.Second))
		inflight := make(chan struct{})
		var first atomic.Bool
		rc := newReceiver(t, map[string]string{"/h": "whsec_s"}, clock.Now, func(r *http.Request) int {
			if first.CompareAndSwap(false, true) {
				close(inflight)
				<-r.Context().Done() // the client went away
			}
			return 200
		})
		s := open()
		org := newOrg(t, s)
		wh := newWebhook(t, s, org, rc.URL+"/h", "whsec_s")
		verified(t, s, org, "example.com", clock.Now())

		stop := runDeliverer(webhooks.New(webhooks.Options{Store: s, AllowPrivate: true, Now: clock.Now, Poll: 5 * time.Millisecond}))
		<-inflight
		stop()
		s.Close()

		s = open()
		d := webhooks.New(webhooks.Options{Store: s, AllowPrivate: true, Now: clock.Now})
		if n, err := d.RunOnce(context.Background()); err != nil || n != 0 {
			t.Fatalf("right after restart: attempted %d (%v), want 0 while the old lease lasts", n, err)
		}
		clock.Add(time.Minute)
		if n, err := d.RunOnce(context.Background()); err != nil || n != 1 {
			t.Fatalf("after the lease: attempted %d (%v), want 1", n, err)
		}
		ds, _ := s.Deliveries(context.Background(), wh.ID, 10)
		if len(ds) != 1 || ds[0].Status != store.DeliveryDelivered || ds[0].Attempts != 1 {
			t.Errorf("deliveries %+v, want delivered, the interrupted attempt not counted", ds)
		}
		if reqs := rc.requests(); len(reqs) != 2 || reqs[0].delivery != reqs[1].delivery {
			t.Errorf("receiver saw %+v, want the same delivery twice", reqs)
		}
	})
}

// TestSlowReceiverDoesNotOutlastLease: a receiver taking 9 s per request
// (under the 10 s timeout) makes a round outlast its one-minute lease. The
// first Deliverer must stop before its lease runs out, so that the second,
// leasing what is left, never POSTs a delivery the first is sending or
// will send: every delivery arrives once.
func TestSlowReceiverDoesNotOutlastLease(t *testing.T) {
	eachDatabase(t, func(t *testing.T, open func() *store.Store) {
		s := open()
		start := time.Now().Truncate(time.Second)
		clock := clocktest.New(start)
		b := webhooks.New(webhooks.Options{Store: s, AllowPrivate: true, Now: clock.Now, Owner: "b"})
		var bRan atomic.Bool
		rc := newReceiver(t, map[string]string{"/h": "whsec_l"}, clock.Now, func(r *http.Request) int {
			clock.Add(9 * time.Second)
			if clock.Now().Sub(start) > time.Minute && bRan.CompareAndSwap(false, true) {
				_, _ = b.RunOnce(r.Context()) // the other instance's round, while this request is slow
			}
			return 200
		})
		org := newOrg(t, s)
		wh := newWebhook(t, s, org, rc.URL+"/h", "whsec_l")
		for i := range 10 {
			verified(t, s, org, fmt.Sprintf("d%d.example.com", i), start)
		}
		a := webhooks.New(webhooks.Options{Store: s, AllowPrivate: true, Now: clock.Now, Owner: "a"})
		if _, err := a.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		clock.Add(time.Minute)
		if _, err := b.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		ds, _ := s.Deliveries(context.Background(), wh.ID, 100)
		seen := map[string]int{}
		for _, r := range rc.requests() {
			seen[r.delivery]++
		}
		for _, d := range ds {
			if d.Status != store.DeliveryDelivered || seen[d.ID] != 1 {
				t.Errorf("delivery %s: %s, received %d times; want delivered once", d.ID, d.Status, seen[d.ID])
			}
		}
		if len(ds) != 10 {
			t.Errorf("%d deliveries, want 10", len(ds))
		}
	})
}

// TestHangingWebhookDoesNotHoldOthers: while one organization's receiver
// hangs on a request, another organization's delivery in the same round
// is sent: a round sends to several webhooks at once.
func TestHangingWebhookDoesNotHoldOthers(t *testing.T) {
	s := storetest.SQLite(t)
	release, entered := make(chan struct{}), make(chan struct{})
	var hanging atomic.Bool
	slow := newReceiver(t, map[string]string{"/h": "whsec_a"}, time.Now, func(r *http.Request) int {
		hanging.Store(true)
		close(entered)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		hanging.Store(false)
		return 200
	})
	healthy := make(chan bool, 1)
	fast := newReceiver(t, map[string]string{"/h": "whsec_b"}, time.Now, func(*http.Request) int {
		<-entered // the requests run at once: let the slow one start
		healthy <- hanging.Load()
		return 200
	})
	orgA, orgB := newOrg(t, s), newOrg(t, s)
	whA := newWebhook(t, s, orgA, slow.URL+"/h", "whsec_a")
	whB := newWebhook(t, s, orgB, fast.URL+"/h", "whsec_b")
	verified(t, s, orgA, "a.example.com", time.Now()) // due first
	verified(t, s, orgB, "b.example.com", time.Now())
	d := webhooks.New(webhooks.Options{Store: s, AllowPrivate: true})
	done := make(chan error, 1)
	go func() { _, err := d.RunOnce(context.Background()); done <- err }()
	if whileHanging := <-healthy; !whileHanging {
		t.Errorf("the healthy receiver got its delivery only after the hanging one gave up")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{whA.ID, whB.ID} {
		if ds, _ := s.Deliveries(context.Background(), id, 1); len(ds) != 1 || ds[0].Status != store.DeliveryDelivered {
			t.Errorf("webhook %s: deliveries %+v, want delivered", id, ds)
		}
	}
}

// TestTimedOutReceiverYieldsItsRound: after an attempt runs into the
// timeout, a round sends nothing more to that webhook: its other
// deliveries wait, unattempted, for the next lease instead of stretching
// the round by a timeout each.
func TestTimedOutReceiverYieldsItsRound(t *testing.T) {
	s := storetest.SQLite(t)
	rc := newReceiver(t, map[string]string{"/h": "whsec_t"}, time.Now, func(r *http.Request) int {
		<-r.Context().Done() // hangs until the client gives up
		return 200
	})
	org := newOrg(t, s)
	wh := newWebhook(t, s, org, rc.URL+"/h", "whsec_t")
	for i := range 3 {
		verified(t, s, org, fmt.Sprintf("d%d.example.com", i), time.Now())
	}
	d := webhooks.New(webhooks.Options{Store: s, AllowPrivate: true, Timeout: 50 * time.Millisecond})
	if n, err := d.RunOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("RunOnce attempted %d (%v), want 1", n, err)
	}
	ds, _ := s.Deliveries(context.Background(), wh.ID, 10)
	attempts := 0
	for _, d := range ds {
		attempts += d.Attempts
		if d.Attempts == 1 && (d.LastStatusCode != 0 || !strings.Contains(d.LastError, "Timeout")) {
			t.Errorf("timed-out attempt recorded as %d %q", d.LastStatusCode, d.LastError)
		}
	}
	if len(ds) != 3 || attempts != 1 {
		t.Errorf("deliveries %+v, want 3 with one attempt among them", ds)
	}
}
