package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

type addressOut struct {
	Email  string `json:"email"`
	Status string `json:"status"`
}

func TestAddressRoutes(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		o := e.createOrg("acme")
		path := "/v1/orgs/acme/addresses"
		e.do("POST", path, o.key, map[string]string{"email": "news@example.com"}).wantErr(t, http.StatusUnprocessableEntity, "domain_not_verified", "")
		e.verifiedDomain(o, map[string]any{"name": "example.com"})

		var a addressOut
		e.do("POST", path, o.key, map[string]string{"email": "news@EXAMPLE.com"}).must(t, http.StatusAccepted, &a)
		if a.Email != "news@example.com" || a.Status != "pending" {
			t.Errorf("added %+v", a)
		}
		e.do("POST", path, o.key, map[string]string{"email": "news@example.com"}).wantErr(t, http.StatusConflict, "conflict", "email")
		first := e.lastToken("news@example.com")

		// Resend: a new link, the old one is dead.
		e.do("POST", path+"/news@example.com/resend", o.key, nil).must(t, http.StatusAccepted, &a)
		second := e.lastToken("news@example.com")
		if second == first || a.Status != "pending" {
			t.Errorf("resend: %+v, token unchanged: %v", a, second == first)
		}
		e.do("POST", "/v1/confirm", "", map[string]string{"token": first}).wantErr(t, http.StatusNotFound, "not_found", "token")

		var c addressOut
		e.do("POST", "/v1/confirm", "", map[string]string{"token": second}).must(t, http.StatusOK, &c)
		if c.Email != "news@example.com" || c.Status != "confirmed" {
			t.Errorf("confirmed %+v", c)
		}
		e.do("POST", "/v1/confirm", "", map[string]string{"token": second}).wantErr(t, http.StatusConflict, "already_used", "token")
		e.do("POST", path+"/news@example.com/resend", o.key, nil).wantErr(t, http.StatusUnprocessableEntity, "already_confirmed", "")

		// The page (GET) only offers the button; the JSON route confirms.
		e.do("POST", path, o.key, map[string]string{"email": "help@example.com"}).must(t, http.StatusAccepted, nil)
		tok := e.lastToken("help@example.com")
		if r := e.do("GET", "/confirm?token="+tok, "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), "Press Confirm") {
			t.Errorf("GET /confirm: %d %s", r.status, r.body)
		}
		e.do("POST", "/v1/confirm", "", map[string]string{"token": tok}).must(t, http.StatusOK, nil)
		if r := e.do("GET", "/confirm?token="+tok, "", nil); r.status != http.StatusConflict || !strings.Contains(string(r.body), "already used") {
			t.Errorf("GET /confirm after confirming: %d %s", r.status, r.body)
		}

		var l struct{ Addresses []addressOut }
		e.do("GET", path, o.key, nil).must(t, http.StatusOK, &l)
		if len(l.Addresses) != 2 || l.Addresses[0].Status != "confirmed" || l.Addresses[1].Status != "confirmed" {
			t.Errorf("list %+v", l.Addresses)
		}
		e.do("DELETE", path+"/help@example.com", o.key, nil).must(t, http.StatusNoContent, nil)
		e.do("DELETE", path+"/help@example.com", o.key, nil).wantErr(t, http.StatusNotFound, "not_found", "email")
		e.do("GET", path+"?status=confirmed", o.key, nil).must(t, http.StatusOK, &l)
		if len(l.Addresses) != 1 || l.Addresses[0].Email != "news@example.com" {
			t.Errorf("list after delete %+v", l.Addresses)
		}
	})
}

func TestAddressErrors(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		o := e.createOrg("acme")
		e.verifiedDomain(o, map[string]any{"name": "example.com"})
		path := "/v1/orgs/acme/addresses"
		for _, tc := range []struct {
			name, method, path, body string
			status                   int
			code, field              string
		}{
			{name: "no email", method: "POST", path: path, body: `{}`, status: 400, code: "invalid", field: "email"},
			{name: "not an address", method: "POST", path: path, body: `{"email": "nope"}`, status: 400, code: "invalid", field: "email"},
			{name: "display name", method: "POST", path: path, body: `{"email": "A <a@example.com>"}`, status: 400, code: "invalid", field: "email"},
			{name: "unknown field", method: "POST", path: path, body: `{"email": "a@example.com", "name": "A"}`, status: 400, code: "invalid", field: "name"},
			{name: "other domain", method: "POST", path: path, body: `{"email": "a@example.net"}`, status: 422, code: "domain_not_verified"},
			{name: "resend unknown", method: "POST", path: path + "/ghost@example.com/resend", status: 404, code: "not_found", field: "email"},
			{name: "delete unknown", method: "DELETE", path: path + "/ghost@example.com", status: 404, code: "not_found", field: "email"},
			{name: "confirm empty token", method: "POST", path: "/v1/confirm", body: `{"token": ""}`, status: 400, code: "invalid", field: "token"},
			{name: "confirm unknown token", method: "POST", path: "/v1/confirm", body: `{"token": "` + strings.Repeat("a", 43) + `"}`, status: 404, code: "not_found", field: "token"},
			{name: "confirm unknown field", method: "POST", path: "/v1/confirm", body: `{"tokn": "x"}`, status: 400, code: "invalid", field: "tokn"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var body any
				if tc.body != "" {
					body = tc.body
				}
				e.do(tc.method, tc.path, o.key, body).wantErr(t, tc.status, tc.code, tc.field)
			})
		}
		if l := e.listJSON(path); strings.Contains(l, "@") {
			t.Errorf("refused requests stored addresses: %s", l)
		}

		// Expiry: 410, and the address is listed as expired.
		e.do("POST", path, o.key, map[string]string{"email": "late@example.com"}).must(t, http.StatusAccepted, nil)
		tok := e.lastToken("late@example.com")
		e.clock.Add(25 * time.Hour)
		e.do("POST", "/v1/confirm", "", map[string]string{"token": tok}).wantErr(t, http.StatusGone, "expired", "token")
		var l struct{ Addresses []addressOut }
		e.do("GET", path+"?status=expired", o.key, nil).must(t, http.StatusOK, &l)
		if len(l.Addresses) != 1 || l.Addresses[0].Email != "late@example.com" {
			t.Errorf("expired list %+v", l.Addresses)
		}

		var last response
		for range 6 {
			last = e.do("POST", path+"/late@example.com/resend", o.key, nil)
		}
		// Resends are limited per hour: 429, with the seconds until the
		// window frees (all resends came at one instant: a full hour).
		if ae := last.wantErr(t, http.StatusTooManyRequests, "rate_limited", ""); !strings.Contains(ae.Message, "resent 5 times") {
			t.Errorf("429 message %q", ae.Message)
		}
		if ra := last.header.Get("Retry-After"); ra != "3600" {
			t.Errorf("429 Retry-After %q, want 3600", ra)
		}
		e.clock.Add(59*time.Minute + 30*time.Second)
		r := e.do("POST", path+"/late@example.com/resend", o.key, nil)
		r.wantErr(t, http.StatusTooManyRequests, "rate_limited", "")
		if ra := r.header.Get("Retry-After"); ra != "30" {
			t.Errorf("429 Retry-After %q 30s before the window ends, want 30", ra)
		}
		e.clock.Add(30 * time.Second)
		e.do("POST", path+"/late@example.com/resend", o.key, nil).must(t, http.StatusAccepted, nil)

		// The relay refuses the confirmation email: 503, saved as pending.
		e.upstream.SetDataReply(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"})
		e.do("POST", path, o.key, map[string]string{"email": "down@example.com"}).wantErr(t, http.StatusServiceUnavailable, "delivery_failed", "")
		e.do("GET", path+"?status=pending", o.key, nil).must(t, http.StatusOK, &l)
		if len(l.Addresses) != 2 || l.Addresses[0].Email != "down@example.com" || l.Addresses[1].Email != "late@example.com" {
			t.Errorf("pending list %+v, want down (relay refused) and late (resent)", l.Addresses)
		}
	})
}
