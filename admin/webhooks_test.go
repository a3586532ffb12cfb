package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/store/storetest"
)

// TestWebhookRoutes: create shows the secret once, list hides it, bad
// input names its field, a loopback target is forbidden, and another
// organization's webhook is 404.
func TestWebhookRoutes(t *testing.T) {
	e := newEnv(t, storetest.SQLite(t))
	acme, other := e.createOrg("acme"), e.createOrg("other")
	base := "/v1/orgs/acme/webhooks"
	for _, c := range []struct {
		body        map[string]any
		code, field string
	}{
		{map[string]any{"url": "ftp://x.example/", "events": []string{"domain.verified"}}, "invalid", "url"},
		{map[string]any{"url": "http://127.0.0.1:9/", "events": []string{"domain.verified"}}, "forbidden_target", "url"},
		{map[string]any{"url": "https://x.example/", "events": []string{}}, "invalid", "events"},
		{map[string]any{"url": "https://x.example/", "events": []string{"domain.nope"}}, "invalid", "events"},
	} {
		e.do("POST", base, acme.key, c.body).wantErr(t, http.StatusBadRequest, c.code, c.field)
	}
	var wh struct{ ID, Secret string }
	e.do("POST", base, acme.key, map[string]any{"url": "https://x.example/h", "events": []string{"domain.verified"}}).must(t, http.StatusCreated, &wh)
	if !strings.HasPrefix(wh.Secret, "whsec_") {
		t.Errorf("secret %q", wh.Secret)
	}
	if l := e.listJSON(base); strings.Contains(l, wh.Secret) || !strings.Contains(l, wh.ID) {
		t.Errorf("list %s: want the webhook without its secret", l)
	}
	e.do("GET", base+"/"+wh.ID+"/deliveries", acme.key, nil).must(t, http.StatusOK, nil)
	e.do("GET", "/v1/orgs/other/webhooks/"+wh.ID+"/deliveries", other.key, nil).wantErr(t, http.StatusNotFound, "not_found", "id")
	e.do("DELETE", "/v1/orgs/other/webhooks/"+wh.ID, other.key, nil).wantErr(t, http.StatusNotFound, "not_found", "id")
	e.do("DELETE", base+"/"+wh.ID, acme.key, nil).must(t, http.StatusNoContent, nil)
}
