package admin_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/sendergate/sendergate/admin"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// TestRegistrationAnswersWhatIsStored: the Domain a registration answers
// (built from what it wrote, without reading its keys back) is byte for
// byte the Domain a GET reads from the store afterwards, the DKIM keys
// and the automatic rotation time included, for either algorithm.
func TestRegistrationAnswersWhatIsStored(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		withRotation := func(o *admin.Options) {
			o.Domains = domains.NewService(o.Store, domains.ServiceOptions{Zone: testZone, Interval: time.Hour, Grace: 72 * time.Hour,
				RotateInterval: 720 * time.Hour, Now: o.Now})
		}
		e := newEnv(t, st, withRotation)
		o := e.createOrg("acme")
		for _, in := range []map[string]any{
			{"name": "rsa.example", "return_path": "mailing", "tracking": "click",
				"dmarc": map[string]any{"policy": "quarantine", "rua": "dmarc@rsa.example", "pct": 50}},
			{"name": "ed.example", "dkim_algorithm": "ed25519", "dkim_selector": "s2026"},
		} {
			created := e.do("POST", "/v1/orgs/acme/domains", o.key, in)
			created.must(t, http.StatusCreated, nil)
			e.clock.Add(time.Minute) // a time read at the GET would differ
			got := e.do("GET", "/v1/orgs/acme/domains/"+in["name"].(string), o.key, nil)
			got.must(t, http.StatusOK, nil)
			if string(created.body) != string(got.body) {
				t.Errorf("POST answered\n%s\nGET reads\n%s", created.body, got.body)
			}
		}
	})
}
