package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

type suppressionOut struct {
	Email, Reason, Status, Diagnostic string
	MessageID                         string     `json:"message_id"`
	Count                             int        `json:"count"`
	ExpiresAt                         *time.Time `json:"expires_at"`
}

// TestSuppressionRoutes: a manual PUT creates (201) then keeps (200) an
// entry, a bounce recorded by the receiver is listed with its status,
// the list filters by reason and pages, DELETE removes (then 404), bad
// input names its field, and another organization sees a 404.
func TestSuppressionRoutes(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		acme, other := e.createOrg("acme"), e.createOrg("other")
		base := "/v1/orgs/acme/suppressions"
		var s suppressionOut
		e.do("PUT", base+"/Manual@Example.com", acme.key, nil).must(t, http.StatusCreated, &s)
		if s.Email != "manual@example.com" || s.Reason != "manual" || s.ExpiresAt != nil {
			t.Errorf("PUT = %+v, want manual@example.com (normalized), manual, never expiring", s)
		}
		e.do("PUT", base+"/manual@example.com", acme.key, "{}").must(t, http.StatusOK, nil)
		e.do("PUT", base+"/x@example.com", acme.key, `{"reason":"x"}`).wantErr(t, http.StatusBadRequest, "invalid", "reason")

		o, err := st.OrgByName(context.Background(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		for _, rcpt := range []string{"a@dead.example", "b@dead.example", "c@dead.example"} {
			if _, err := st.RecordFeedback(context.Background(), store.Feedback{OrgID: o.ID, Email: rcpt, Domain: "example.com",
				MessageID: "m-" + rcpt, Status: "5.1.1", Diagnostic: "smtp; 550 5.1.1 user unknown", At: time.Now()},
				"hard", store.SuppressionRules{SoftLimit: 5, SoftWindow: time.Hour}); err != nil {
				t.Fatal(err)
			}
		}
		e.do("GET", base+"/a@dead.example", acme.key, nil).must(t, http.StatusOK, &s)
		if s.Reason != "bounce" || s.Status != "5.1.1" || !strings.Contains(s.Diagnostic, "user unknown") || s.MessageID != "m-a@dead.example" || s.Count != 1 {
			t.Errorf("bounce entry = %+v", s)
		}

		var page struct {
			Suppressions []suppressionOut
			Next         string
		}
		e.do("GET", base+"?reason=bounce&limit=2", acme.key, nil).must(t, http.StatusOK, &page)
		if len(page.Suppressions) != 2 || page.Suppressions[0].Email != "a@dead.example" || page.Next != "b@dead.example" {
			t.Fatalf("first page = %+v", page)
		}
		next := page.Next
		page.Next = ""
		e.do("GET", base+"?reason=bounce&limit=2&after="+next, acme.key, nil).must(t, http.StatusOK, &page)
		if len(page.Suppressions) != 1 || page.Suppressions[0].Email != "c@dead.example" || page.Next != "" {
			t.Fatalf("second page = %+v", page)
		}
		e.do("GET", base+"?reason=manual", acme.key, nil).must(t, http.StatusOK, &page)
		if len(page.Suppressions) != 1 || page.Suppressions[0].Email != "manual@example.com" {
			t.Errorf("manual filter = %+v", page)
		}

		e.do("GET", base+"?reason=spam", acme.key, nil).wantErr(t, http.StatusBadRequest, "invalid", "reason")
		e.do("GET", base+"?limit=0", acme.key, nil).wantErr(t, http.StatusBadRequest, "invalid", "limit")
		e.do("GET", base+"?limit=x", acme.key, nil).wantErr(t, http.StatusBadRequest, "invalid", "limit")
		e.do("PUT", base+"/not-an-address", acme.key, nil).wantErr(t, http.StatusBadRequest, "invalid", "email")

		// Another organization: 404 for the organization, and its own
		// list does not show acme's entries.
		e.do("GET", base+"/a@dead.example", other.key, nil).wantErr(t, http.StatusNotFound, "not_found", "org")
		e.do("DELETE", base+"/a@dead.example", other.key, nil).wantErr(t, http.StatusNotFound, "not_found", "org")
		e.do("GET", "/v1/orgs/other/suppressions", other.key, nil).must(t, http.StatusOK, &page)
		if len(page.Suppressions) != 0 {
			t.Errorf("other's list = %+v, want empty", page)
		}
		e.do("GET", "/v1/orgs/other/suppressions/a@dead.example", other.key, nil).wantErr(t, http.StatusNotFound, "not_found", "email")

		e.do("DELETE", base+"/a@dead.example", acme.key, nil).must(t, http.StatusNoContent, nil)
		e.do("GET", base+"/a@dead.example", acme.key, nil).wantErr(t, http.StatusNotFound, "not_found", "email")
		e.do("DELETE", base+"/a@dead.example", acme.key, nil).wantErr(t, http.StatusNotFound, "not_found", "email")
	})
}
