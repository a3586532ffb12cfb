package webhooks_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
	"github.com/sendergate/sendergate/webhooks"
)

// eachDatabase runs fn as a subtest "sqlite" and a subtest "postgres"; open
// returns a new handle on one migrated database each time it is called, as
// a second process (or the same process after a restart) would have.
func eachDatabase(t *testing.T, fn func(t *testing.T, open func() *store.Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sg.db")
		fn(t, func() *store.Store { t.Helper(); return storetest.OpenSQLite(t, path) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := storetest.PostgresDSN(t)
		fn(t, func() *store.Store { t.Helper(); return storetest.OpenPostgres(t, dsn) })
	})
}

// newOrg creates an organization (and its sandbox domain).
func newOrg(t *testing.T, s *store.Store) store.Org {
	t.Helper()
	now := store.At(time.Now())
	name := "acme" + store.NewID()[16:]
	org := store.Org{ID: store.NewID(), Name: name, SandboxDomain: name + ".sandbox.sg.localhost", CreatedAt: now}
	sb := store.Domain{ID: store.NewID(), OrgID: org.ID, Name: org.SandboxDomain, Sandbox: true, Token: store.NewID(), Status: "verified",
		DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048", DKIMKey: "k", Records: "[]", CreatedAt: now, VerifiedAt: now}
	if err := s.CreateOrg(context.Background(), org, sb); err != nil {
		t.Fatal(err)
	}
	return org
}

// newWebhook subscribes url to domain.verified for org with secret.
func newWebhook(t *testing.T, s *store.Store, org store.Org, url, secret string) store.Webhook {
	t.Helper()
	w := store.Webhook{ID: store.NewID(), OrgID: org.ID, URL: url, Events: `["domain.verified"]`, Secret: secret, CreatedAt: store.At(time.Now())}
	if err := s.CreateWebhook(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	return w
}

// verified records a domain.verified event for domain at at.
func verified(t *testing.T, s *store.Store, org store.Org, domain string, at time.Time) {
	t.Helper()
	ev := store.Event{OrgID: org.ID, Subject: "domain:" + domain, Kind: "domain.verified", Detail: "pending -> verified: all records ok", At: store.At(at)}
	if err := s.AddEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

// request is one POST a receiver saw.
type request struct {
	path, delivery, event string
	body                  string
	signed                bool // the signature verified with the path's secret
}

// receiver is an HTTP endpoint that verifies every request's signature
// (secrets by URL path, timestamps against now) and answers status().
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	seen []request
}

// newReceiver starts a receiver; status may be nil (200).
func newReceiver(t *testing.T, secrets map[string]string, now func() time.Time, status func(r *http.Request) int) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := webhooks.Verify(secrets[r.URL.Path], r.Header.Get("Sendergate-Signature"), body, now(), 5*time.Minute)
		rc.mu.Lock()
		rc.seen = append(rc.seen, request{path: r.URL.Path, delivery: r.Header.Get("Sendergate-Delivery"),
			event: r.Header.Get("Sendergate-Event"), body: string(body), signed: err == nil && r.Header.Get("Content-Type") == "application/json"})
		rc.mu.Unlock()
		code := http.StatusOK
		if status != nil {
			code = status(r)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// requests returns what the receiver has seen so far.
func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.seen...)
}

// waitDeliveries polls the webhook's deliveries until ok accepts them,
// failing the test after 30 s (a bound on a hang, not a timing assertion).
func waitDeliveries(t *testing.T, s *store.Store, webhookID string, ok func([]store.Delivery) bool) []store.Delivery {
	t.Helper()
	var ds []store.Delivery
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var err error
		ds, err = s.Deliveries(context.Background(), webhookID, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if ok(ds) {
			return ds
		}
	}
	var states []string
	for _, d := range ds {
		states = append(states, fmt.Sprintf("%s %s attempts=%d code=%d err=%q", d.ID, d.Status, d.Attempts, d.LastStatusCode, d.LastError))
	}
	t.Fatalf("deliveries of %s never reached the wanted state:\n%s", webhookID, strings.Join(states, "\n"))
	return nil
}

// runDeliverer runs d until the returned stop is called; stop waits for
// Run to return.
func runDeliverer(d *webhooks.Deliverer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}
