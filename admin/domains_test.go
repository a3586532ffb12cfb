package admin_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

func TestDomainRoutes(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		o := e.createOrg("acme")
		e.createAccount(o, "app")
		var d domainJSON
		in := map[string]any{"name": "Example.COM.", "return_path": "mailing", "tracking": "click",
			"dmarc": map[string]any{"policy": "quarantine", "rua": "dmarc@example.com", "pct": 50}}
		r := e.do("POST", "/v1/orgs/acme/domains", o.key, in)
		r.must(t, http.StatusCreated, &d)
		if d.Name != "example.com" || d.Status != "pending" || len(d.Records) != 5 || d.DKIMSelector != "sg1" ||
			d.ReturnPathDomain != "mailing.example.com" || d.TrackingDomain != "click.example.com" || d.VerifiedAt != nil {
			t.Errorf("created %s", r.body)
		}
		if strings.Contains(string(r.body), "PRIVATE") {
			t.Error("the private key left the server")
		}

		var l struct{ Domains []domainJSON }
		e.do("GET", "/v1/orgs/acme/domains", o.key, nil).must(t, http.StatusOK, &l)
		var names []string
		for _, x := range l.Domains {
			names = append(names, x.Name)
			if x.Sandbox && (x.Name != "acme."+testSandbox || x.Status != "verified") {
				t.Errorf("sandbox domain %+v", x)
			}
		}
		if slices.Sort(names); strings.Join(names, ",") != "acme."+testSandbox+",example.com" {
			t.Errorf("domains %v", names)
		}

		// Not yet published: the check runs and reports, the domain stays pending.
		e.do("POST", "/v1/orgs/acme/domains/example.com/verify", o.key, nil).must(t, http.StatusOK, &d)
		if d.Status != "pending" || d.Records[0].Status != "missing" {
			t.Errorf("verify before publishing: %+v", d)
		}
		e.publish(d.Records)
		e.do("POST", "/v1/orgs/acme/domains/EXAMPLE.com/verify", o.key, nil).must(t, http.StatusOK, &d)
		if d.Status != "verified" || d.VerifiedAt == nil {
			t.Errorf("verify after publishing: %+v", d)
		}
		e.do("PUT", "/v1/orgs/acme/domains/example.com/access", o.key, map[string]any{"restricted": true, "accounts": []string{"app"}}).must(t, http.StatusOK, &d)
		if !d.Access.Restricted || !slices.Equal(d.Access.Accounts, []string{"app"}) {
			t.Errorf("access %+v", d.Access)
		}
		e.do("GET", "/v1/orgs/acme/domains/example.com", o.key, nil).must(t, http.StatusOK, &d)
		if d.Status != "verified" || !d.Access.Restricted || !slices.Equal(d.Access.Accounts, []string{"app"}) {
			t.Errorf("get %+v", d)
		}
		var ev struct {
			Events []struct{ Kind, Detail string }
		}
		e.do("GET", "/v1/orgs/acme/domains/example.com/events", o.key, nil).must(t, http.StatusOK, &ev)
		var kinds []string
		for _, x := range ev.Events {
			kinds = append(kinds, x.Kind)
		}
		for _, k := range []string{"domain.verified", "domain.access"} {
			if !slices.Contains(kinds, k) {
				t.Errorf("events %v lack %s", kinds, k)
			}
		}
		e.do("DELETE", "/v1/orgs/acme/domains/example.com", o.key, nil).must(t, http.StatusNoContent, nil)
		e.do("GET", "/v1/orgs/acme/domains/example.com", o.key, nil).wantErr(t, http.StatusNotFound, "not_found", "domain")
		e.do("DELETE", "/v1/orgs/acme/domains/example.com", o.key, nil).wantErr(t, http.StatusNotFound, "not_found", "domain")
	})
}

func TestDomainErrors(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		o := e.createOrg("acme")
		e.createAccount(o, "app")
		e.do("POST", "/v1/orgs/acme/domains", o.key, map[string]any{"name": "example.com"}).must(t, http.StatusCreated, nil)
		before := e.listJSON("/v1/orgs/acme/domains")

		for _, tc := range []struct {
			name, method, path, body string
			status                   int
			code, field              string
		}{
			{name: "single label", method: "POST", path: "/domains", body: `{"name": "localhost"}`, status: 400, code: "invalid", field: "name"},
			{name: "IP literal", method: "POST", path: "/domains", body: `{"name": "192.0.2.1"}`, status: 400, code: "invalid", field: "name"},
			{name: "inside the zone", method: "POST", path: "/domains", body: `{"name": "x.` + testZone + `"}`, status: 400, code: "invalid", field: "name"},
			{name: "bad selector", method: "POST", path: "/domains", body: `{"name": "b.example", "dkim_selector": "x"}`, status: 400, code: "invalid", field: "dkim_selector"},
			{name: "bad algorithm", method: "POST", path: "/domains", body: `{"name": "b.example", "dkim_algorithm": "dsa"}`, status: 400, code: "invalid", field: "dkim_algorithm"},
			{name: "same labels", method: "POST", path: "/domains", body: `{"name": "b.example", "return_path": "m", "tracking": "m"}`, status: 400, code: "invalid", field: "tracking"},
			{name: "pct with none", method: "POST", path: "/domains", body: `{"name": "b.example", "dmarc": {"policy": "none", "pct": 50}}`, status: 400, code: "invalid", field: "dmarc.pct"},
			{name: "unknown field", method: "POST", path: "/domains", body: `{"name": "b.example", "selector": "abc"}`, status: 400, code: "invalid", field: "selector"},
			{name: "wrong type", method: "POST", path: "/domains", body: `{"name": ["b.example"]}`, status: 400, code: "invalid", field: "name"},
			{name: "invalid JSON", method: "POST", path: "/domains", body: `{"name": `, status: 400, code: "invalid_json"},
			{name: "duplicate", method: "POST", path: "/domains", body: `{"name": "EXAMPLE.com"}`, status: 409, code: "conflict", field: "name"},
			{name: "get unknown", method: "GET", path: "/domains/nope.example", status: 404, code: "not_found", field: "domain"},
			{name: "verify unknown", method: "POST", path: "/domains/nope.example/verify", status: 404, code: "not_found", field: "domain"},
			{name: "events unknown", method: "GET", path: "/domains/nope.example/events", status: 404, code: "not_found", field: "domain"},
			{name: "access unknown domain", method: "PUT", path: "/domains/nope.example/access", body: `{"restricted": false}`, status: 404, code: "not_found", field: "domain"},
			{name: "access without restricted", method: "PUT", path: "/domains/example.com/access", body: `{"accounts": ["app"]}`, status: 400, code: "invalid", field: "restricted"},
			{name: "access unknown account", method: "PUT", path: "/domains/example.com/access", body: `{"restricted": true, "accounts": ["app", "ghost"]}`, status: 400, code: "invalid", field: "accounts[1]"},
			{name: "access accounts unrestricted", method: "PUT", path: "/domains/example.com/access", body: `{"restricted": false, "accounts": ["app"]}`, status: 400, code: "invalid", field: "accounts"},
			{name: "access wrong type", method: "PUT", path: "/domains/example.com/access", body: `{"restricted": "yes"}`, status: 400, code: "invalid", field: "restricted"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var body any
				if tc.body != "" {
					body = tc.body
				}
				e.do(tc.method, "/v1/orgs/acme"+tc.path, o.key, body).wantErr(t, tc.status, tc.code, tc.field)
			})
		}
		if after := e.listJSON("/v1/orgs/acme/domains"); after != before {
			t.Errorf("refused requests changed the domains:\n%s\nwas\n%s", after, before)
		}
		// The sandbox domain cannot be deleted: 404 (as if it were not a
		// deletable domain) or 422 (a state error), never 204.
		if r := e.do("DELETE", "/v1/orgs/acme/domains/acme."+testSandbox, o.key, nil); r.status != http.StatusNotFound && r.status != http.StatusUnprocessableEntity {
			t.Errorf("delete sandbox domain: %d %s", r.status, r.body)
		}
		e.do("GET", "/v1/orgs/acme/domains/acme."+testSandbox, o.key, nil).must(t, http.StatusOK, nil)
		// An unknown field inside dmarc is refused like one at the top.
		r := e.do("POST", "/v1/orgs/acme/domains", o.key, `{"name": "b.example", "dmarc": {"policy": "reject", "pcnt": 5}}`)
		var b struct{ Error apiErr }
		_ = json.Unmarshal(r.body, &b)
		if r.status != http.StatusBadRequest || (b.Error.Field != "dmarc.pcnt" && b.Error.Field != "pcnt") {
			t.Errorf("unknown dmarc field: %d %+v, want 400 naming dmarc.pcnt", r.status, b.Error)
		}
	})
}

// TestDomainOwnedElsewhere: a domain verified by one organization is 409
// for another to add, and 422 for another to verify when it had added it
// before.
func TestDomainOwnedElsewhere(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		a, b, c := e.createOrg("a"), e.createOrg("b"), e.createOrg("c")
		var bd domainJSON
		e.do("POST", "/v1/orgs/b/domains", b.key, map[string]any{"name": "example.com", "dkim_selector": "bsel"}).must(t, http.StatusCreated, &bd)
		e.publish(bd.Records)
		e.verifiedDomain(a, map[string]any{"name": "example.com"})
		e.do("POST", "/v1/orgs/b/domains/example.com/verify", b.key, nil).wantErr(t, http.StatusUnprocessableEntity, "conflict", "")
		e.do("POST", "/v1/orgs/c/domains", c.key, map[string]any{"name": "example.com"}).wantErr(t, http.StatusConflict, "conflict", "name")
	})
}
