package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/admin"
	"github.com/sendergate/sendergate/limits"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// withLimits sets the [limits] defaults and the limiter usage is read from.
func withLimits(d limits.Defaults, l *limits.Limiter) envOption {
	return func(o *admin.Options) { o.LimitDefaults, o.Limits = d, l }
}

type limitsJSON struct {
	PerMinute       int64       `json:"per_minute"`
	PerHour         int64       `json:"per_hour"`
	PerDay          int64       `json:"per_day"`
	Source          string      `json:"source"`
	Organization    *limitsJSON `json:"organization"`
	NewAccountUntil *string     `json:"new_account_until"`
}

func TestOrganizationLimitsAdminOnly(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st, withLimits(limits.Defaults{Org: limits.Values{0, 0, 5000}}, nil))
		o := e.createOrg("acme")
		var got limitsJSON
		e.do("GET", "/v1/orgs/acme/limits", o.key, nil).must(t, http.StatusOK, &got)
		if got != (limitsJSON{PerDay: 5000, Source: "default"}) {
			t.Errorf("before any PUT: %+v, want the config default", got)
		}
		// An organization cannot raise its own limits.
		e.do("PUT", "/v1/orgs/acme/limits", o.key, map[string]int{"per_day": 1000000}).wantErr(t, http.StatusForbidden, "forbidden", "Authorization")
		e.do("GET", "/v1/orgs/acme/limits", o.key, nil).must(t, http.StatusOK, &got)
		if got.PerDay != 5000 {
			t.Errorf("after the refused PUT: %+v", got)
		}
		e.do("PUT", "/v1/orgs/acme/limits", testAdminKey, map[string]int{"per_minute": 10, "per_day": 1000}).must(t, http.StatusOK, &got)
		if got != (limitsJSON{PerMinute: 10, PerDay: 1000, Source: "set"}) {
			t.Errorf("PUT answer: %+v", got)
		}
		e.do("GET", "/v1/orgs/acme/limits", o.key, nil).must(t, http.StatusOK, &got)
		if got != (limitsJSON{PerMinute: 10, PerDay: 1000, Source: "set"}) {
			t.Errorf("GET after PUT: %+v, want what was set (absent per_hour = none)", got)
		}
		evs, err := st.RecentEvents(context.Background(), orgID(t, st, "acme"), "limits", 5)
		if err != nil || len(evs) != 1 || evs[0].Kind != "limits.changed" || evs[0].Detail != "organization acme: 10/minute, none/hour, 1000/day" {
			t.Errorf("events %+v %v, want one limits.changed", evs, err)
		}
		rival := e.createOrg("rival")
		e.do("GET", "/v1/orgs/acme/limits", rival.key, nil).wantErr(t, http.StatusNotFound, "not_found", "org")
	})
}

func TestLimitsValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t))
	o := e.createOrg("acme")
	e.createAccount(o, "app")
	tests := []struct {
		name, body, field string
	}{
		{name: "negative", body: `{"per_hour": -1}`, field: "per_hour"},
		{name: "not a number", body: `{"per_minute": "ten"}`, field: "per_minute"},
		{name: "not an integer", body: `{"per_day": 1.5}`, field: "per_day"},
		{name: "too large", body: `{"per_day": 1000000000001}`, field: "per_day"},
		{name: "unknown window", body: `{"per_week": 3}`, field: "per_week"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/v1/orgs/acme/limits", "/v1/orgs/acme/smtp-accounts/app/limits"} {
				e.do("PUT", path, testAdminKey, tt.body).wantErr(t, http.StatusBadRequest, "invalid", tt.field)
			}
		})
	}
}

func TestAccountLimits(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st, withLimits(limits.Defaults{Account: limits.Values{0, 50, 0}}, nil))
		o := e.createOrg("acme")
		e.createAccount(o, "app")
		var got limitsJSON
		e.do("GET", "/v1/orgs/acme/smtp-accounts/app/limits", o.key, nil).must(t, http.StatusOK, &got)
		if got.PerHour != 50 || got.Source != "default" || got.Organization == nil || got.Organization.Source != "default" {
			t.Errorf("defaults: %+v", got)
		}
		e.do("PUT", "/v1/orgs/acme/limits", testAdminKey, map[string]int{"per_hour": 100}).must(t, http.StatusOK, nil)

		r := e.do("PUT", "/v1/orgs/acme/smtp-accounts/app/limits", o.key, map[string]int{"per_minute": 5, "per_hour": 150})
		if msg := r.wantErr(t, http.StatusUnprocessableEntity, "above_organization_limit", "per_hour").Message; !strings.Contains(msg, "100") {
			t.Errorf("message %q does not name the organization's limit", msg)
		}
		e.do("PUT", "/v1/orgs/acme/smtp-accounts/app/limits", o.key, map[string]int{"per_minute": 5, "per_hour": 100}).must(t, http.StatusOK, &got)
		if got.PerMinute != 5 || got.PerHour != 100 || got.Source != "set" || got.Organization.PerHour != 100 {
			t.Errorf("set at the organization's limit: %+v", got)
		}
		// No account limit in a window: the organization's still applies.
		e.do("PUT", "/v1/orgs/acme/smtp-accounts/app/limits", o.key, map[string]int{"per_minute": 5}).must(t, http.StatusOK, &got)
		if got.PerHour != 0 {
			t.Errorf("per_hour absent: %+v, want none", got)
		}
		e.do("PUT", "/v1/orgs/acme/smtp-accounts/nobody/limits", o.key, map[string]int{}).wantErr(t, http.StatusNotFound, "not_found", "name")
		rival := e.createOrg("rival")
		e.do("PUT", "/v1/orgs/acme/smtp-accounts/app/limits", rival.key, map[string]int{}).wantErr(t, http.StatusNotFound, "not_found", "org")

		// Deleting the account removes its limits with it.
		e.do("DELETE", "/v1/orgs/acme/smtp-accounts/app", o.key, nil).must(t, http.StatusNoContent, nil)
		e.createAccount(o, "app")
		e.do("GET", "/v1/orgs/acme/smtp-accounts/app/limits", o.key, nil).must(t, http.StatusOK, &got)
		if got.Source != "default" || got.PerMinute != 0 {
			t.Errorf("a new account of the same name: %+v, want the defaults", got)
		}
	})
}

func TestUsageRoute(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		l := limits.New(st, limits.Options{})
		e := newEnv(t, st, withLimits(limits.Defaults{Account: limits.Values{limits.Minute: 3}}, l))
		o := e.createOrg("acme")
		e.createAccount(o, "app")
		e.createAccount(o, "idle")
		orgID := orgID(t, st, "acme")
		app, err := st.AccountByName(context.Background(), orgID, "app")
		if err != nil {
			t.Fatal(err)
		}
		scopes := []limits.Scope{
			{Kind: limits.Account, ID: app.ID, OrgID: orgID, Name: app.Username, Limits: limits.Values{limits.Minute: 3}},
			{Kind: limits.Organization, ID: orgID, OrgID: orgID, Name: "acme"},
		}
		for range 5 { // 3 admitted, 2 refused
			l.Admit(context.Background(), scopes, 1)
		}
		var u struct {
			Org    string
			Scopes []struct {
				Scope, Name, Username, Source string
				Windows                       map[string]struct{ Count, Limit int64 }
				RefusedToday                  int64 `json:"refused_today"`
			}
		}
		e.do("GET", "/v1/orgs/acme/usage", o.key, nil).must(t, http.StatusOK, &u)
		if u.Org != "acme" || len(u.Scopes) != 3 {
			t.Fatalf("usage: %+v", u)
		}
		wants := []struct {
			scope, name   string
			minute, limit int64
			refused       int64
		}{
			{scope: "organization", name: "acme", minute: 3},
			{scope: "account", name: "app", minute: 3, limit: 3, refused: 2},
			{scope: "account", name: "idle", limit: 3},
		}
		for i, w := range wants {
			s := u.Scopes[i]
			if s.Scope != w.scope || s.Name != w.name || s.Windows["minute"].Count != w.minute || s.Windows["minute"].Limit != w.limit ||
				s.Windows["hour"].Count != w.minute || s.Windows["day"].Count != w.minute || s.RefusedToday != w.refused {
				t.Errorf("scope %d: %+v, want %+v", i, s, w)
			}
		}
	})
}

func orgID(t *testing.T, st *store.Store, name string) string {
	t.Helper()
	o, err := st.OrgByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return o.ID
}
