package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

type orgOut struct {
	Name          string     `json:"name"`
	SandboxDomain string     `json:"sandbox_domain"`
	CreatedAt     *time.Time `json:"created_at"`
}

func orgNames(t *testing.T, r response) []string {
	t.Helper()
	var l struct{ Orgs []orgOut }
	r.must(t, http.StatusOK, &l)
	var names []string
	for _, o := range l.Orgs {
		names = append(names, o.Name)
	}
	return names
}

func TestOrgLifecycle(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		var created orgOut
		e.do("POST", "/v1/orgs", testAdminKey, map[string]string{"name": "acme"}).must(t, http.StatusCreated, &created)
		if created.Name != "acme" || created.SandboxDomain != "acme."+testSandbox {
			t.Errorf("created %+v", created)
		}
		e.createOrg("globex")
		if got := orgNames(t, e.do("GET", "/v1/orgs", testAdminKey, nil)); strings.Join(got, ",") != "acme,globex" {
			t.Errorf("orgs %v, want acme,globex", got)
		}
		var got orgOut
		e.do("GET", "/v1/orgs/acme", testAdminKey, nil).must(t, http.StatusOK, &got)
		if got.Name != "acme" || got.SandboxDomain != "acme."+testSandbox || got.CreatedAt == nil || !got.CreatedAt.Equal(e.clock.Now()) {
			t.Errorf("get %+v, want created at %v", got, e.clock.Now())
		}
		// Deleting removes everything the organization owns.
		e.createAccount(org{name: "acme", key: testAdminKey}, "app")
		e.do("DELETE", "/v1/orgs/acme", testAdminKey, nil).must(t, http.StatusNoContent, nil)
		e.do("GET", "/v1/orgs/acme", testAdminKey, nil).wantErr(t, http.StatusNotFound, "not_found", "org")
		e.do("DELETE", "/v1/orgs/acme", testAdminKey, nil).wantErr(t, http.StatusNotFound, "not_found", "org")
		if got := orgNames(t, e.do("GET", "/v1/orgs", testAdminKey, nil)); strings.Join(got, ",") != "globex" {
			t.Errorf("orgs after delete %v", got)
		}
		// The name is free again, and the new organization starts empty.
		e.createOrg("acme")
		if l := e.listJSON("/v1/orgs/acme/smtp-accounts"); strings.Contains(l, `"app"`) {
			t.Errorf("account survived its organization: %s", l)
		}
	})
}

func TestKeysAndAccounts(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		o := e.createOrg("acme")
		if !strings.HasPrefix(o.key, "sgk_"+o.keyID+".") {
			t.Errorf("key %q does not carry its id %q", o.key, o.keyID)
		}
		var self orgOut
		e.do("GET", "/v1/orgs/acme", o.key, nil).must(t, http.StatusOK, &self)
		if self.Name != "acme" {
			t.Errorf("org key reads %+v", self)
		}

		c := e.createAccount(o, "billing-app")
		if c.Name != "billing-app" || c.Username != "billing-app@acme" || c.Password == "" {
			t.Errorf("created %+v", c)
		}
		var l struct {
			Accounts []map[string]any
		}
		e.do("GET", "/v1/orgs/acme/smtp-accounts", o.key, nil).must(t, http.StatusOK, &l)
		if len(l.Accounts) != 1 || l.Accounts[0]["name"] != "billing-app" || l.Accounts[0]["username"] != "billing-app@acme" {
			t.Errorf("list %+v", l.Accounts)
		}
		if _, ok := l.Accounts[0]["password"]; ok {
			t.Error("list shows a password field")
		}

		var rot credentials
		e.clock.Add(time.Minute)
		e.do("POST", "/v1/orgs/acme/smtp-accounts/billing-app/password", o.key, nil).must(t, http.StatusOK, &rot)
		if rot.Name != c.Name || rot.Username != c.Username || rot.Password == "" || rot.Password == c.Password {
			t.Errorf("rotated %+v, created %+v", rot, c)
		}
		a, err := st.AccountByName(t.Context(), mustOrgID(t, st, "acme"), "billing-app")
		if err != nil {
			t.Fatal(err)
		}
		if !a.UpdatedAt.Equal(e.clock.Now()) || a.PasswordHash == "" || strings.Contains(a.PasswordHash, rot.Password) {
			t.Errorf("stored account %+v after rotation", a)
		}
		e.do("POST", "/v1/orgs/acme/smtp-accounts/nobody/password", o.key, nil).wantErr(t, http.StatusNotFound, "not_found", "name")

		e.do("DELETE", "/v1/orgs/acme/smtp-accounts/billing-app", o.key, nil).must(t, http.StatusNoContent, nil)
		e.do("DELETE", "/v1/orgs/acme/smtp-accounts/billing-app", o.key, nil).wantErr(t, http.StatusNotFound, "not_found", "name")
		if got := e.listJSON("/v1/orgs/acme/smtp-accounts"); strings.Contains(got, "billing-app") {
			t.Errorf("deleted account still listed: %s", got)
		}

		// An organization key may mint and revoke keys of its organization.
		var k2 struct{ ID, Key string }
		e.do("POST", "/v1/orgs/acme/keys", o.key, nil).must(t, http.StatusCreated, &k2)
		if k2.Key == o.key || k2.ID == o.keyID {
			t.Error("second key equals the first")
		}
		e.do("DELETE", "/v1/orgs/acme/keys/"+k2.ID, o.key, nil).must(t, http.StatusNoContent, nil)
		e.do("DELETE", "/v1/orgs/acme/keys/"+k2.ID, o.key, nil).wantErr(t, http.StatusNotFound, "not_found", "id")
	})
}

func mustOrgID(t *testing.T, st *store.Store, name string) string {
	t.Helper()
	o, err := st.OrgByName(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return o.ID
}

func TestSameAccountNameInTwoOrgs(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		a, b := e.createOrg("a"), e.createOrg("b")
		ca, cb := e.createAccount(a, "app"), e.createAccount(b, "app")
		if ca.Username != "app@a" || cb.Username != "app@b" {
			t.Errorf("usernames %q %q", ca.Username, cb.Username)
		}
		e.do("POST", "/v1/orgs/a/smtp-accounts", a.key, map[string]string{"name": "app"}).wantErr(t, http.StatusConflict, "conflict", "name")
		e.do("POST", "/v1/orgs", testAdminKey, map[string]string{"name": "a"}).wantErr(t, http.StatusConflict, "conflict", "name")
		if got := orgNames(t, e.do("GET", "/v1/orgs", testAdminKey, nil)); strings.Join(got, ",") != "a,b" {
			t.Errorf("orgs after conflicts %v", got)
		}
	})
}
