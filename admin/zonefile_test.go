package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/internal/zonecheck"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// TestZonefile checks that the zonefile route gives every record of a
// domain as a zone-file line a BIND-style import accepts, and only to the
// domain's own organization.
func TestZonefile(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		o := e.createOrg("acme")
		other := e.createOrg("other")
		var d domainJSON
		in := map[string]any{"name": "newsletter.example.com", "return_path": "mailing", "tracking": "click",
			"dkim_selector": "mkt1", "dmarc": map[string]any{"policy": "quarantine", "rua": "dmarc@example.com", "pct": 50}}
		e.do("POST", "/v1/orgs/acme/domains", o.key, in).must(t, http.StatusCreated, &d)

		r := e.do("GET", "/v1/orgs/acme/domains/newsletter.example.com/zonefile", o.key, nil)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
			t.Fatalf("zonefile: %d %s\n%s", r.status, r.header.Get("Content-Type"), r.body)
		}
		text := string(r.body)
		if strings.Contains(text, "$ORIGIN") {
			t.Errorf("the snippet sets $ORIGIN:\n%s", text)
		}
		for _, rec := range d.Records {
			line := rec.Host + ".\t3600\tIN\tCNAME\t" + rec.Value + ".\t; " + rec.Purpose
			if !strings.Contains(text, line+"\n") {
				t.Errorf("the snippet lacks %q:\n%s", line, text)
			}
		}
		zonecheck.Check(t, "newsletter.example.com", text)

		// The sandbox domain is served by sendergate: nothing to publish.
		r = e.do("GET", "/v1/orgs/acme/domains/acme."+testSandbox+"/zonefile", o.key, nil)
		if r.status != http.StatusOK || !strings.Contains(string(r.body), "nothing to publish") {
			t.Errorf("sandbox zonefile: %d\n%s", r.status, r.body)
		}
		// Another organization's domain does not exist for this key.
		e.do("GET", "/v1/orgs/acme/domains/newsletter.example.com/zonefile", other.key, nil).wantErr(t, http.StatusNotFound, "not_found", "org")
		e.do("GET", "/v1/orgs/other/domains/newsletter.example.com/zonefile", other.key, nil).wantErr(t, http.StatusNotFound, "not_found", "domain")
	})
}
