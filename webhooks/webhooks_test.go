package webhooks_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
	"github.com/sendergate/sendergate/webhooks"
)

func setup(t *testing.T, s *store.Store, url string) store.Webhook {
	t.Helper()
	ctx := context.Background()
	now := store.At(time.Now())
	name := "acme" + store.NewID()[16:]
	org := store.Org{ID: store.NewID(), Name: name, SandboxDomain: name + ".sandbox.sg.localhost", CreatedAt: now}
	sb := store.Domain{ID: store.NewID(), OrgID: org.ID, Name: org.SandboxDomain, Sandbox: true, Token: store.NewID(), Status: "verified",
		DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048", DKIMKey: "k", Records: "[]", CreatedAt: now, VerifiedAt: now}
	if err := s.CreateOrg(ctx, org, sb); err != nil {
		t.Fatal(err)
	}
	w := store.Webhook{ID: store.NewID(), OrgID: org.ID, URL: url, Events: `["domain.verified"]`, Secret: "whsec_test", CreatedAt: store.At(time.Now())}
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEvent(ctx, store.Event{OrgID: org.ID, Subject: "domain:example.com", Kind: "domain.verified", At: store.At(time.Now())}); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestRetriesUntilDelivered: a receiver verifying signatures answers 500
// twice, then 200; the delivery ends delivered after three attempts, each
// by a new Deliverer (as after a restart).
func TestRetriesUntilDelivered(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		var calls, bad atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if webhooks.Verify("whsec_test", r.Header.Get("Sendergate-Signature"), body, time.Now(), 5*time.Minute) != nil ||
				r.Header.Get("Sendergate-Event") != "domain.verified" || r.Header.Get("Content-Type") != "application/json" {
				bad.Add(1)
			}
			if calls.Add(1) <= 2 {
				w.WriteHeader(500)
			}
		}))
		defer srv.Close()
		wh := setup(t, s, srv.URL)
		for i := 0; i < 3; i++ {
			d := webhooks.New(webhooks.Options{Store: s, AllowPrivate: true, Backoff: func(int) time.Duration { return 0 }})
			if n, err := d.RunOnce(context.Background()); err != nil || n != 1 {
				t.Fatalf("run %d: %d %v", i, n, err)
			}
		}
		ds, err := s.Deliveries(context.Background(), wh.ID, 100)
		if err != nil || len(ds) != 1 || ds[0].Status != store.DeliveryDelivered || ds[0].Attempts != 3 || ds[0].LastStatusCode != 200 {
			t.Fatalf("deliveries %+v %v, want delivered after 3 attempts", ds, err)
		}
		if bad.Load() != 0 {
			t.Errorf("%d requests with a bad signature or headers", bad.Load())
		}
	})
}

// TestRefusesLoopbackAndRedirects: without AllowPrivate a loopback target
// is refused at dial (and by CheckURL); a redirect is not followed.
func TestRefusesLoopbackAndRedirects(t *testing.T) {
	var hit atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit.Add(1) }))
	defer target.Close()
	if err := webhooks.CheckURL(target.URL, false); err == nil {
		t.Errorf("CheckURL(%s) accepted a loopback target", target.URL)
	}
	s := storetest.SQLite(t)
	wh := setup(t, s, target.URL)
	d := webhooks.New(webhooks.Options{Store: s})
	if _, err := d.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	ds, _ := s.Deliveries(context.Background(), wh.ID, 1)
	if hit.Load() != 0 || len(ds) != 1 || ds[0].Status != store.DeliveryPending || !strings.Contains(ds[0].LastError, "not allowed") {
		t.Fatalf("loopback target: hits %d, deliveries %+v", hit.Load(), ds)
	}

	redir := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	defer redir.Close()
	wh2 := setup(t, s, redir.URL)
	d = webhooks.New(webhooks.Options{Store: s, AllowPrivate: true})
	if _, err := d.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	ds, _ = s.Deliveries(context.Background(), wh2.ID, 1)
	if hit.Load() != 0 || len(ds) != 1 || ds[0].Status == store.DeliveryDelivered || ds[0].LastStatusCode != 302 {
		t.Fatalf("redirect: hits %d, deliveries %+v", hit.Load(), ds)
	}
}
