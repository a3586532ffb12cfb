package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// badBody is a request body the name validation or the strict JSON
// decoder must refuse with a 400 naming the problem.
type badBody struct {
	name  string
	body  string
	code  string // "invalid" (a field) or "invalid_json"
	field string
}

// decodeCases fail in the decoder, whatever the route.
var decodeCases = []badBody{
	{name: "empty body", body: "", code: "invalid_json"},
	{name: "invalid JSON", body: `{"name": "acme"`, code: "invalid_json"},
	{name: "not JSON", body: `name=acme`, code: "invalid_json"},
	{name: "trailing garbage", body: `{"name": "acme"} x`, code: "invalid_json"},
	{name: "two objects", body: `{"name": "acme"}{"name": "other"}`, code: "invalid_json"},
	{name: "unknown field", body: `{"name": "acme", "nmae": "x"}`, code: "invalid", field: "nmae"},
	{name: "wrong type", body: `{"name": 42}`, code: "invalid", field: "name"},
	{name: "unknown field after null", body: `{"name": null, "x": 1}`, code: "invalid", field: "x"},
}

func nameCases(label string, tooLong int) []badBody {
	long := strings.Repeat("a", tooLong)
	return []badBody{
		{name: "uppercase", body: `{"name": "Acme"}`, code: "invalid", field: "name"},
		{name: "too long", body: `{"name": "` + long + `"}`, code: "invalid", field: "name"},
		{name: "empty", body: `{"name": ""}`, code: "invalid", field: "name"},
		{name: "missing", body: `{}`, code: "invalid", field: "name"},
		{name: "null body", body: `null`, code: "invalid", field: "name"},
		{name: "space", body: `{"name": "a b"}`, code: "invalid", field: "name"},
		{name: "slash", body: `{"name": "a/b"}`, code: "invalid", field: "name"},
		{name: "at", body: `{"name": "a@b"}`, code: "invalid", field: "name"},
		{name: "non-ASCII", body: `{"name": "bücher"}`, code: "invalid", field: "name"},
		{name: "newline", body: `{"name": "a\nb"}`, code: "invalid", field: "name"},
		{name: label + " padded", body: `{"name": " acme "}`, code: "invalid", field: "name"},
	}
}

func TestCreateOrgRefusesBadInput(t *testing.T) {
	t.Parallel()
	cases := append(append(nameCases("org", 41), decodeCases...),
		badBody{name: "leading hyphen", body: `{"name": "-acme"}`, code: "invalid", field: "name"},
		badBody{name: "trailing hyphen", body: `{"name": "acme-"}`, code: "invalid", field: "name"},
		badBody{name: "underscore", body: `{"name": "a_b"}`, code: "invalid", field: "name"},
		badBody{name: "dot", body: `{"name": "ac.me"}`, code: "invalid", field: "name"},
	)
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		e.createOrg("existing")
		before := e.listJSON("/v1/orgs")
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				e.do("POST", "/v1/orgs", testAdminKey, tc.body).wantErr(t, http.StatusBadRequest, tc.code, tc.field)
			})
		}
		if after := e.listJSON("/v1/orgs"); after != before {
			t.Errorf("refused requests changed the orgs:\n%s\nwas\n%s", after, before)
		}
		// The boundaries are accepted.
		for _, name := range []string{"a", "0", strings.Repeat("z", 40), "a-b", "1-2-3"} {
			e.do("POST", "/v1/orgs", testAdminKey, map[string]string{"name": name}).must(t, http.StatusCreated, nil)
		}
	})
}

func TestCreateAccountRefusesBadInput(t *testing.T) {
	t.Parallel()
	cases := append(append(nameCases("account", 65), decodeCases...),
		badBody{name: "leading hyphen", body: `{"name": "-app"}`, code: "invalid", field: "name"},
		badBody{name: "leading dot", body: `{"name": ".app"}`, code: "invalid", field: "name"},
		badBody{name: "dot", body: `{"name": "."}`, code: "invalid", field: "name"},
		badBody{name: "dot dot", body: `{"name": ".."}`, code: "invalid", field: "name"},
	)
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		o := e.createOrg("acme")
		e.createAccount(o, "existing")
		before := e.listJSON("/v1/orgs/acme/smtp-accounts")
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				e.do("POST", "/v1/orgs/acme/smtp-accounts", o.key, tc.body).wantErr(t, http.StatusBadRequest, tc.code, tc.field)
			})
		}
		if after := e.listJSON("/v1/orgs/acme/smtp-accounts"); after != before {
			t.Errorf("refused requests changed the accounts:\n%s\nwas\n%s", after, before)
		}
		for _, name := range []string{"a", "0", strings.Repeat("z", 64), "billing-app", "app.v2", "a_b", "x-", "x.", "x..y"} {
			e.createAccount(o, name)
		}
	})
}

// TestAccountNamesStayAddressable: every name create accepts must be
// usable in the rotate and delete URLs. "." and ".." are path segments the
// HTTP router cleans away, so such an account could never be rotated or
// deleted.
func TestAccountNamesStayAddressable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	o := e.createOrg("acme")
	for _, name := range []string{".", "..", "...", ".a", "a."} {
		r := e.do("POST", "/v1/orgs/acme/smtp-accounts", o.key, map[string]string{"name": name})
		if r.status == http.StatusBadRequest {
			continue // refused up front: fine
		}
		r.must(t, http.StatusCreated, nil)
		for _, path := range []string{"/v1/orgs/acme/smtp-accounts/" + name + "/password", "/v1/orgs/acme/smtp-accounts/" + name} {
			method := "POST"
			if !strings.HasSuffix(path, "/password") {
				method = "DELETE"
			}
			if got := e.do(method, path, o.key, nil); got.status >= 300 {
				t.Errorf("account %q was created but %s %s answers %d %s", name, method, path, got.status, got.body)
			}
		}
	}
}

// TestTypeErrorsSpeakJSON: a value of the wrong JSON type is a 400 whose
// message names JSON types (object, array, string, number, boolean), never
// Go types such as "struct { Name string ... }", "[]string" or "int".
func TestTypeErrorsSpeakJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	o := e.createOrg("acme")
	e.do("POST", "/v1/orgs/acme/domains", o.key, map[string]string{"name": "example.com"}).must(t, http.StatusCreated, nil)
	for _, tc := range []struct{ name, method, path, body, field string }{
		{name: "array body", method: "POST", path: "/v1/orgs", body: `[]`},
		{name: "string body", method: "POST", path: "/v1/orgs", body: `"acme"`},
		{name: "number body", method: "POST", path: "/v1/orgs/acme/smtp-accounts", body: `42`},
		{name: "number name", method: "POST", path: "/v1/orgs/acme/smtp-accounts", body: `{"name": 42}`, field: "name"},
		{name: "string for array", method: "PUT", path: "/v1/orgs/acme/domains/example.com/access", body: `{"restricted": true, "accounts": "app"}`, field: "accounts"},
		{name: "number for object", method: "POST", path: "/v1/orgs/acme/domains", body: `{"name": "b.example", "dmarc": 5}`, field: "dmarc"},
		{name: "string for number", method: "POST", path: "/v1/orgs/acme/domains", body: `{"name": "b.example", "dmarc": {"policy": "reject", "pct": "5"}}`, field: "dmarc.pct"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, testAdminKey, tc.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d %s", r.status, r.body)
			}
			var b struct{ Error apiErr }
			r.must(t, http.StatusBadRequest, &b)
			msg := b.Error.Message
			if b.Error.Field != tc.field || strings.HasPrefix(msg, " ") || strings.ContainsAny(msg, "[]*{}") ||
				strings.Contains(msg, "struct") || strings.Contains(msg, " a int") {
				t.Errorf("field %q message %q: want field %q and JSON type names", b.Error.Field, msg, tc.field)
			}
		})
	}
}

func TestRequestBodyTooLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	body := `{"name": "` + strings.Repeat("a", 1<<20) + `"}`
	e.do("POST", "/v1/orgs", testAdminKey, body).wantErr(t, http.StatusRequestEntityTooLarge, "too_large", "")
}
