package admin_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// authedRoutes are the routes that need a bearer key, with a body where
// one is read.
var authedRoutes = []struct{ method, path, body string }{
	{"POST", "/v1/orgs", `{"name": "new"}`},
	{"GET", "/v1/orgs", ""},
	{"GET", "/v1/orgs/acme", ""},
	{"DELETE", "/v1/orgs/acme", ""},
	{"POST", "/v1/orgs/acme/keys", ""},
	{"DELETE", "/v1/orgs/acme/keys/KEYID", ""},
	{"POST", "/v1/orgs/acme/smtp-accounts", `{"name": "new"}`},
	{"GET", "/v1/orgs/acme/smtp-accounts", ""},
	{"POST", "/v1/orgs/acme/smtp-accounts/app/password", ""},
	{"DELETE", "/v1/orgs/acme/smtp-accounts/app", ""},
	{"POST", "/v1/orgs/acme/domains", `{"name": "new.example.com"}`},
	{"GET", "/v1/orgs/acme/domains", ""},
	{"GET", "/v1/orgs/acme/domains/example.com", ""},
	{"DELETE", "/v1/orgs/acme/domains/example.com", ""},
	{"POST", "/v1/orgs/acme/domains/example.com/verify", ""},
	{"PUT", "/v1/orgs/acme/domains/example.com/access", `{"restricted": false}`},
	{"GET", "/v1/orgs/acme/domains/example.com/events", ""},
	{"POST", "/v1/orgs/acme/addresses", `{"email": "x@example.com"}`},
	{"GET", "/v1/orgs/acme/addresses", ""},
	{"POST", "/v1/orgs/acme/addresses/a@example.com/resend", ""},
	{"DELETE", "/v1/orgs/acme/addresses/a@example.com", ""},
	{"GET", "/v1/orgs/acme/limits", ""},
	{"PUT", "/v1/orgs/acme/limits", `{"per_hour": 10}`},
	{"GET", "/v1/orgs/acme/smtp-accounts/app/limits", ""},
	{"PUT", "/v1/orgs/acme/smtp-accounts/app/limits", `{"per_hour": 10}`},
	{"GET", "/v1/orgs/acme/usage", ""},
}

func TestBadCredentialsAre401(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		o := e.createOrg("acme")
		e.createAccount(o, "app")
		before := e.listJSON("/v1/orgs/acme/smtp-accounts") + e.listJSON("/v1/orgs")
		_, secret, _ := strings.Cut(o.key, ".")
		// A secret that differs from the real one in its first character
		// (whatever that character is).
		wrong := "a" + secret[1:]
		if secret[0] == 'a' {
			wrong = "b" + secret[1:]
		}
		headers := []struct{ name, value string }{
			{"missing", ""},
			{"scheme only", "Bearer"},
			{"empty key", "Bearer "},
			{"blank key", "Bearer    "},
			{"basic scheme", "Basic " + testAdminKey},
			{"no scheme", testAdminKey},
			{"wrong admin key", "Bearer " + testAdminKey + "x"},
			{"admin key prefix", "Bearer " + testAdminKey[:len(testAdminKey)-1]},
			{"org key without dot", "Bearer sgk_" + o.keyID},
			{"unknown key id", "Bearer sgk_doesnotexist." + secret},
			{"right id, wrong secret", "Bearer sgk_" + o.keyID + "." + wrong},
			{"org key truncated", "Bearer " + o.key[:len(o.key)-1]},
			{"key of another id", "Bearer sgk_" + o.keyID + "x." + secret},
		}
		for _, h := range headers {
			for _, rt := range authedRoutes {
				t.Run(h.name+"/"+rt.method+" "+rt.path, func(t *testing.T) {
					var rd io.Reader = http.NoBody
					if rt.body != "" {
						rd = strings.NewReader(rt.body)
					}
					req, err := http.NewRequest(rt.method, e.url+strings.ReplaceAll(rt.path, "KEYID", o.keyID), rd)
					if err != nil {
						t.Fatal(err)
					}
					if h.value != "" {
						req.Header.Set("Authorization", h.value)
					}
					r := e.send(req)
					r.wantErr(t, http.StatusUnauthorized, "unauthorized", "Authorization")
					if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
						t.Errorf("WWW-Authenticate %q", got)
					}
				})
			}
		}
		if after := e.listJSON("/v1/orgs/acme/smtp-accounts") + e.listJSON("/v1/orgs"); after != before {
			t.Errorf("unauthenticated requests changed data:\n%s\nwas\n%s", after, before)
		}
		// The scheme is case-insensitive (RFC 9110 11.1), and both keys work.
		req, _ := http.NewRequest("GET", e.url+"/v1/orgs/acme", nil)
		req.Header.Set("Authorization", "bearer "+o.key)
		e.send(req).must(t, http.StatusOK, nil)
	})
}

func TestOrgKeyCannotManageOrgs(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		o := e.createOrg("acme")
		e.do("POST", "/v1/orgs", o.key, map[string]string{"name": "new"}).wantErr(t, http.StatusForbidden, "forbidden", "Authorization")
		e.do("DELETE", "/v1/orgs/acme", o.key, nil).wantErr(t, http.StatusForbidden, "forbidden", "Authorization")
		if got := orgNames(t, e.do("GET", "/v1/orgs", testAdminKey, nil)); strings.Join(got, ",") != "acme" {
			t.Errorf("orgs %v, want acme only", got)
		}
		e.do("GET", "/v1/orgs/acme", o.key, nil).must(t, http.StatusOK, nil)
	})
}

func TestKeyRevocationIsImmediate(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		o := e.createOrg("acme")
		var k struct{ ID, Key string }
		e.do("POST", "/v1/orgs/acme/keys", testAdminKey, nil).must(t, http.StatusCreated, &k)
		e.do("GET", "/v1/orgs/acme/smtp-accounts", k.Key, nil).must(t, http.StatusOK, nil)
		e.do("DELETE", "/v1/orgs/acme/keys/"+k.ID, testAdminKey, nil).must(t, http.StatusNoContent, nil)
		e.do("GET", "/v1/orgs/acme/smtp-accounts", k.Key, nil).wantErr(t, http.StatusUnauthorized, "unauthorized", "Authorization")
		e.do("POST", "/v1/orgs/acme/smtp-accounts", k.Key, map[string]string{"name": "x"}).wantErr(t, http.StatusUnauthorized, "unauthorized", "Authorization")
		// The other key of the organization is untouched.
		e.do("GET", "/v1/orgs/acme/smtp-accounts", o.key, nil).must(t, http.StatusOK, nil)

		// A key may revoke itself; the very next request fails.
		e.do("DELETE", "/v1/orgs/acme/keys/"+o.keyID, o.key, nil).must(t, http.StatusNoContent, nil)
		e.do("GET", "/v1/orgs/acme", o.key, nil).wantErr(t, http.StatusUnauthorized, "unauthorized", "Authorization")

		// Deleting the organization revokes its keys.
		g := e.createOrg("globex")
		e.do("DELETE", "/v1/orgs/globex", testAdminKey, nil).must(t, http.StatusNoContent, nil)
		e.do("GET", "/v1/orgs", g.key, nil).wantErr(t, http.StatusUnauthorized, "unauthorized", "Authorization")
		if _, err := st.APIKeyByID(context.Background(), g.keyID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("key of a deleted org still stored: %v", err)
		}
	})
}
