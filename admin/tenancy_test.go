package admin_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// TestTenantIsolation: organization B's key gets, for everything of
// organization A, the same 404 as for an organization that does not
// exist, and changes nothing.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		a, b := e.createOrg("a"), e.createOrg("b")
		e.createAccount(a, "app")
		e.verifiedDomain(a, map[string]any{"name": "example.com"})
		e.do("POST", "/v1/orgs/a/addresses", a.key, map[string]string{"email": "x@example.com"}).must(t, http.StatusAccepted, nil)
		snapshot := func() string {
			var sb strings.Builder
			for _, p := range []string{"/v1/orgs", "/v1/orgs/a", "/v1/orgs/a/smtp-accounts", "/v1/orgs/a/domains",
				"/v1/orgs/a/domains/example.com/events", "/v1/orgs/a/addresses"} {
				sb.WriteString(e.listJSON(p))
			}
			acct, err := st.AccountByName(t.Context(), mustOrgID(t, st, "a"), "app")
			if err != nil {
				t.Fatal(err)
			}
			sb.WriteString(acct.PasswordHash)
			return sb.String()
		}
		before := snapshot()

		for _, rt := range []struct{ method, path, body string }{
			{"GET", "/v1/orgs/{org}", ""},
			{"DELETE", "/v1/orgs/{org}", ""},
			{"POST", "/v1/orgs/{org}/keys", ""},
			{"DELETE", "/v1/orgs/{org}/keys/" + a.keyID, ""},
			{"GET", "/v1/orgs/{org}/smtp-accounts", ""},
			{"POST", "/v1/orgs/{org}/smtp-accounts", `{"name": "intruder"}`},
			{"POST", "/v1/orgs/{org}/smtp-accounts/app/password", ""},
			{"DELETE", "/v1/orgs/{org}/smtp-accounts/app", ""},
			{"GET", "/v1/orgs/{org}/domains", ""},
			{"POST", "/v1/orgs/{org}/domains", `{"name": "other.example.net"}`},
			{"GET", "/v1/orgs/{org}/domains/example.com", ""},
			{"DELETE", "/v1/orgs/{org}/domains/example.com", ""},
			{"POST", "/v1/orgs/{org}/domains/example.com/verify", ""},
			{"PUT", "/v1/orgs/{org}/domains/example.com/access", `{"restricted": true, "accounts": []}`},
			{"GET", "/v1/orgs/{org}/domains/example.com/events", ""},
			{"GET", "/v1/orgs/{org}/addresses", ""},
			{"POST", "/v1/orgs/{org}/addresses", `{"email": "y@example.com"}`},
			{"POST", "/v1/orgs/{org}/addresses/x@example.com/resend", ""},
			{"DELETE", "/v1/orgs/{org}/addresses/x@example.com", ""},
		} {
			t.Run(rt.method+" "+rt.path, func(t *testing.T) {
				var body any
				if rt.body != "" {
					body = rt.body
				}
				got := e.do(rt.method, strings.ReplaceAll(rt.path, "{org}", "a"), b.key, body)
				ghost := e.do(rt.method, strings.ReplaceAll(rt.path, "{org}", "ghost"), b.key, body)
				ge := got.wantErr(t, http.StatusNotFound, "not_found", "org")
				he := ghost.wantErr(t, http.StatusNotFound, "not_found", "org")
				if strings.ReplaceAll(ge.Message, `"a"`, "X") != strings.ReplaceAll(he.Message, `"ghost"`, "X") {
					t.Errorf("another org's 404 %q differs from a missing org's %q", ge.Message, he.Message)
				}
			})
		}
		// A's key id through B's own organization: not B's key.
		e.do("DELETE", "/v1/orgs/b/keys/"+a.keyID, b.key, nil).wantErr(t, http.StatusNotFound, "not_found", "id")
		// A's account and domain names through B's organization.
		e.do("POST", "/v1/orgs/b/smtp-accounts/app/password", b.key, nil).wantErr(t, http.StatusNotFound, "not_found", "name")
		e.do("GET", "/v1/orgs/b/domains/example.com", b.key, nil).wantErr(t, http.StatusNotFound, "not_found", "domain")

		if after := snapshot(); after != before {
			t.Errorf("org b's key changed org a:\n%s\nwas\n%s", after, before)
		}
		e.do("GET", "/v1/orgs/a", a.key, nil).must(t, http.StatusOK, nil) // a's key still works

		if got := orgNames(t, e.do("GET", "/v1/orgs", b.key, nil)); strings.Join(got, ",") != "b" {
			t.Errorf("org key lists %v, want only b", got)
		}
		if got := orgNames(t, e.do("GET", "/v1/orgs", testAdminKey, nil)); strings.Join(got, ",") != "a,b" {
			t.Errorf("admin key lists %v, want a,b", got)
		}
		// The admin key acts in any organization.
		var c credentials
		e.do("POST", "/v1/orgs/a/smtp-accounts/app/password", testAdminKey, nil).must(t, http.StatusOK, &c)
		if c.Username != "app@a" {
			t.Errorf("admin rotated %+v", c)
		}
	})
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		var h map[string]string
		e.do("GET", "/healthz", "", nil).must(t, http.StatusOK, &h)
		if h["status"] != "ok" || h["database"] != "up" || h["policy"] != "loaded" {
			t.Errorf("healthz %v", h)
		}
	})
}

func TestHealthzNotReady(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t), withReady(func(context.Context) error { return errors.New("policy snapshot not loaded") }))
	var h map[string]string
	e.do("GET", "/healthz", "", nil).must(t, http.StatusServiceUnavailable, &h)
	if h["status"] != "starting" || h["database"] != "up" || h["policy"] != "not_loaded" || h["error"] == "" {
		t.Errorf("healthz %v", h)
	}
}

func TestMetricsRoute(t *testing.T) {
	t.Parallel()
	without := newEnv(t, storetest.SQLite(t))
	if r := without.do("GET", "/metrics", "", nil); !isCatchAll(r) {
		t.Errorf("/metrics without Options.Metrics: %d %s, want the catch-all 404", r.status, r.body)
	}
	with := newEnv(t, storetest.SQLite(t), withMetrics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("sendergate_up 1\n"))
	})))
	r := with.do("GET", "/metrics", "", nil)
	if r.status != http.StatusOK || string(r.body) != "sendergate_up 1\n" {
		t.Errorf("/metrics: %d %q", r.status, r.body)
	}
}

func TestUnknownRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	for _, rt := range []struct{ method, path string }{
		{"GET", "/nothing"}, {"POST", "/"}, {"GET", "/v2/orgs"}, {"PATCH", "/v1/orgs"}, {"PUT", "/v1/orgs/acme"}, {"GET", "/v1/orgs/acme/keys"},
	} {
		r := e.do(rt.method, rt.path, testAdminKey, nil)
		e := r.wantErr(t, http.StatusNotFound, "not_found", "")
		if !strings.HasPrefix(e.Message, "no such route") {
			t.Errorf("%s %s: %q", rt.method, rt.path, e.Message)
		}
	}
}
