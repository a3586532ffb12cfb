package admin_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/internal/tcpfwd"
	"github.com/sendergate/sendergate/store/storetest"
)

// TestDatabaseDownIs503 puts a forwarder between the API and a real
// PostgreSQL and cuts it: every route answers 503 "unavailable" with
// Retry-After, for the admin key and for an organization key (whose
// lookup fails: never 401), /healthz reports the database down, and all
// of it recovers when the database is back, without a restart.
func TestDatabaseDownIs503(t *testing.T) {
	t.Parallel()
	fwd, dsn := tcpfwd.Target(t, storetest.PostgresDSN(t))
	st := storetest.OpenPostgres(t, dsn)
	e := newEnv(t, st, withReady(func(context.Context) error { return nil })) // the snapshot stays loaded
	o := e.createOrg("acme")
	e.createAccount(o, "app")
	e.verifiedDomain(o, map[string]any{"name": "example.com"})
	e.do("POST", "/v1/orgs/acme/addresses", o.key, map[string]string{"email": "news@example.com"}).must(t, http.StatusAccepted, nil)
	tok := e.lastToken("news@example.com")

	fwd.Cut()
	send := func(method, path, key, body string, header map[string]string) response {
		t.Helper()
		var rd io.Reader = http.NoBody
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, e.url+strings.ReplaceAll(path, "KEYID", o.keyID), rd)
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		return e.send(req)
	}
	for _, key := range []struct{ name, key string }{{"admin key", testAdminKey}, {"org key", o.key}} {
		for _, rt := range authedRoutes {
			t.Run(key.name+"/"+rt.method+" "+rt.path, func(t *testing.T) {
				r := send(rt.method, rt.path, key.key, rt.body, nil)
				r.wantErr(t, http.StatusServiceUnavailable, "unavailable", "")
				if ra := r.header.Get("Retry-After"); ra != "5" {
					t.Errorf("Retry-After %q, want 5", ra)
				}
				if r.header.Get("WWW-Authenticate") != "" {
					t.Error("a 503 asks for other credentials")
				}
			})
		}
	}
	// A key that is wrong whatever the database says is still a 401.
	send("GET", "/v1/orgs", "not-a-key-of-any-kind", "", nil).wantErr(t, http.StatusUnauthorized, "unauthorized", "Authorization")

	// The confirmation routes, JSON and HTML.
	send("POST", "/v1/confirm", "", `{"token": "`+tok+`"}`, nil).wantErr(t, http.StatusServiceUnavailable, "unavailable", "")
	for _, r := range []response{
		send("GET", "/confirm?token="+tok, "", "", nil),
		send("POST", "/confirm", "", "token="+tok, map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": e.url}),
	} {
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" ||
			!strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || strings.Contains(string(r.body), tok) {
			t.Errorf("confirmation page with the database down: %d %v %s", r.status, r.header, r.body)
		}
	}

	var h map[string]string
	e.do("GET", "/healthz", "", nil).must(t, http.StatusServiceUnavailable, &h)
	if h["status"] != "degraded" || h["database"] != "down" || h["policy"] != "loaded" {
		t.Errorf("healthz with the database down: %v", h)
	}
	if strings.Contains(e.logs.String(), testAdminKey) || strings.Contains(e.logs.String(), o.key) {
		t.Error("a key appears in the log")
	}

	fwd.Restore()
	e.do("GET", "/healthz", "", nil).must(t, http.StatusOK, &h)
	if h["status"] != "ok" || h["database"] != "up" || h["policy"] != "loaded" {
		t.Errorf("healthz after the database is back: %v", h)
	}
	e.do("GET", "/v1/orgs/acme/smtp-accounts", o.key, nil).must(t, http.StatusOK, nil)
	e.do("GET", "/v1/orgs", testAdminKey, nil).must(t, http.StatusOK, nil)
	e.do("POST", "/v1/confirm", "", map[string]string{"token": tok}).must(t, http.StatusOK, nil)
}
