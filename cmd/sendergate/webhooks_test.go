package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the store's SQLite driver, to move a retry's due time

	"github.com/sendergate/sendergate/webhooks"
)

// webhookDelivery is one row of GET .../webhooks/{id}/deliveries.
type webhookDelivery struct {
	ID             string
	Event          string
	Status         string
	Attempts       int
	LastStatusCode int `json:"last_status_code"`
}

// waitDelivery polls the webhook's deliveries until ok accepts the one
// there is (failing after 30 s: a bound on a hang, not a timing test).
func (in *instance) waitDelivery(t *testing.T, key, hook string, ok func(webhookDelivery) bool) webhookDelivery {
	t.Helper()
	var out struct{ Deliveries []webhookDelivery }
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code := in.call(t, key, "GET", "/v1/orgs/acme/webhooks/"+hook+"/deliveries", "", &out); code != 200 {
			t.Fatalf("deliveries: %d", code)
		}
		if len(out.Deliveries) == 1 && ok(out.Deliveries[0]) {
			return out.Deliveries[0]
		}
	}
	t.Fatalf("deliveries never reached the wanted state: %+v", out.Deliveries)
	return webhookDelivery{}
}

// TestWebhookSurvivesRestart: `sendergate serve` POSTs a domain.deleted
// event to a receiver answering 500; the daemon is stopped with SIGTERM
// and started again on the same data dir, the receiver now answers 200,
// and the event is delivered: same delivery, signed, two attempts.
//
// The retry waits the real backoff (30 s) and there is no config key to
// shorten it, so while the daemon is down the test moves the retry's due
// time to now in the database, as if the daemon had been down that long.
func TestWebhookSurvivesRestart(t *testing.T) {
	var code atomic.Int32
	code.Store(500)
	var mu sync.Mutex
	var secret string
	type seen struct {
		delivery string
		signed   bool // and the body is the event's
	}
	var got []seen
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		ok := webhooks.Verify(secret, r.Header.Get("Sendergate-Signature"), body, time.Now(), 5*time.Minute) == nil
		var p struct {
			ID, Type, Org string
			Data          struct{ Domain string }
		}
		ok = ok && json.Unmarshal(body, &p) == nil && p.Type == "domain.deleted" && p.Org == "acme" && p.Data.Domain == "example.com" &&
			p.ID == r.Header.Get("Sendergate-Delivery")
		got = append(got, seen{delivery: p.ID, signed: ok})
		mu.Unlock()
		w.WriteHeader(int(code.Load()))
	}))
	defer rc.Close()

	const extra = "[webhooks]\nallow_private = true\n"
	in := startDaemon(t, daemonOpts{extra: extra})
	key := in.adminKey(t)
	if c := in.call(t, key, "POST", "/v1/orgs", `{"name":"acme"}`, nil); c != 201 {
		t.Fatalf("create org: %d", c)
	}
	var hook struct{ ID, Secret string }
	if c := in.call(t, key, "POST", "/v1/orgs/acme/webhooks", `{"url":"`+rc.URL+`/hook","events":["domain.deleted"]}`, &hook); c != 201 || hook.Secret == "" {
		t.Fatalf("create webhook: %d %+v", c, hook)
	}
	mu.Lock()
	secret = hook.Secret
	mu.Unlock()
	if c := in.call(t, key, "POST", "/v1/orgs/acme/domains", `{"name":"example.com"}`, nil); c != 201 {
		t.Fatalf("create domain: %d", c)
	}
	if c := in.call(t, key, "DELETE", "/v1/orgs/acme/domains/example.com", "", nil); c != 204 {
		t.Fatalf("delete domain: %d", c)
	}
	first := in.waitDelivery(t, key, hook.ID, func(d webhookDelivery) bool { return d.Attempts == 1 })
	if first.Status != "pending" || first.LastStatusCode != 500 || first.Event != "domain.deleted" {
		t.Fatalf("after the 500: %+v, want pending with 500", first)
	}
	in.stop()

	db, err := sql.Open("sqlite", filepath.Join(in.dir, "data", "sg.db"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.ExecContext(context.Background(), `UPDATE webhook_deliveries SET next_attempt_at = ? WHERE status = 'pending'`, time.Now().UnixMilli())
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("move the retry: %d rows, %v", n, err)
	}
	db.Close()

	code.Store(200)
	again := startDaemon(t, daemonOpts{extra: extra, dataDir: in.dir})
	last := again.waitDelivery(t, key, hook.ID, func(d webhookDelivery) bool { return d.Status != "pending" })
	if last.ID != first.ID || last.Status != "delivered" || last.Attempts != 2 || last.LastStatusCode != 200 {
		t.Errorf("after the restart: %+v, want %s delivered at the second attempt", last, first.ID)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("receiver saw %d requests, want 2", len(got))
	}
	for _, r := range got {
		if r.delivery != first.ID || !r.signed {
			t.Errorf("request %+v, want delivery %s, signed", r, first.ID)
		}
	}
}
