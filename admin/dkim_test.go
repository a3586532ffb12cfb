package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// dkimOut is the dkim part of the Domain output.
type dkimOut struct {
	DKIMSelector string `json:"dkim_selector"`
	DKIM         struct {
		Active  *struct{ Selector, Algorithm string }
		Next    *struct{ Selector, Algorithm string }
		Retired []struct {
			Selector       string
			SafeToRemoveAt string `json:"safe_to_remove_at"`
		}
		Rotation struct{ Status string }
	}
}

// checkFailed is the 422 of a DKIM step whose DNS check failed.
type checkFailed struct {
	Error   apiErr
	Records []struct{ Host, Type, Status, Reason string }
}

// TestDKIMRoutes: the Domain output shows the keys without a private key;
// a rotation answers 422 with the record's reason until the next
// selector resolves to the next key, then switches; a BYOK key is
// validated naming the field and refused with 422 until its TXT exists.
func TestDKIMRoutes(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		o := e.createOrg("acme")
		var d dkimOut
		r := e.do("POST", "/v1/orgs/acme/domains", o.key, map[string]any{"name": "rot.example", "dkim_algorithm": "ed25519"})
		r.must(t, http.StatusCreated, &d)
		if d.DKIM.Active == nil || d.DKIM.Active.Selector != "sg1" || d.DKIM.Next == nil || d.DKIM.Next.Selector != "sg1b" ||
			d.DKIM.Rotation.Status != "ready" || d.DKIM.Retired == nil {
			t.Fatalf("new domain: %s", r.body)
		}
		if strings.Contains(string(r.body), "PRIVATE") {
			t.Fatal("a private key left the server")
		}
		base := "/v1/orgs/acme/domains/rot.example/dkim/"

		var cf checkFailed
		e.do("POST", base+"rotate", o.key, nil).must(t, http.StatusUnprocessableEntity, &cf)
		if cf.Error.Code != "dkim_check_failed" || len(cf.Records) != 1 || cf.Records[0].Host != "sg1b._domainkey.rot.example" ||
			cf.Records[0].Status != "missing" || !strings.Contains(cf.Records[0].Reason, "CNAME") {
			t.Fatalf("rotation without DNS: %+v", cf)
		}
		e.do("POST", base+"rotate", o.key, map[string]string{"algorithm": "dsa"}).wantErr(t, http.StatusBadRequest, "invalid", "algorithm")
		e.do("POST", base+"rotate", o.key, map[string]string{"nope": "x"}).wantErr(t, http.StatusBadRequest, "invalid", "nope")

		// The customer's CNAME and, behind it, the next key's TXT (what
		// the zone serves).
		dom, err := st.DomainByName(context.Background(), orgID(t, st, "acme"), "rot.example")
		if err != nil {
			t.Fatal(err)
		}
		ks, _ := st.DKIMKeys(context.Background(), dom.ID)
		target := domains.DKIMTarget("sg1b", dom.Token, testZone)
		e.dns.PublishCNAME("sg1b._domainkey.rot.example", target)
		for _, k := range ks {
			if k.State == store.KeyNext {
				e.dns.Add(t, target+`. 300 IN TXT "`+k.TXT+`"`)
			}
		}
		r = e.do("POST", base+"rotate", o.key, nil)
		r.must(t, http.StatusOK, &d)
		if d.DKIMSelector != "sg1b" || d.DKIM.Active.Selector != "sg1b" || d.DKIM.Next != nil || len(d.DKIM.Retired) != 1 ||
			d.DKIM.Retired[0].Selector != "sg1" || d.DKIM.Retired[0].SafeToRemoveAt == "" || d.DKIM.Rotation.Status != "waiting" {
			t.Fatalf("after the rotation: %s", r.body)
		}
		var waiting map[string]apiErr
		e.do("POST", base+"rotate", o.key, nil).must(t, http.StatusUnprocessableEntity, &waiting)
		if waiting["error"].Code != "rotation_pending" {
			t.Errorf("second rotation: %+v, want rotation_pending", waiting)
		}

		// BYOK.
		k, _ := dkim.GenerateKey(dkim.Ed25519)
		pemText, _ := dkim.MarshalPrivateKey(k)
		txt, _ := dkim.TXTValue(k.Public())
		e.do("PUT", base+"byok", o.key, map[string]string{"selector": "corp1", "private_key": "not a key"}).wantErr(t, http.StatusBadRequest, "invalid", "private_key")
		e.do("PUT", base+"byok", o.key, map[string]string{"selector": "sg1", "private_key": pemText}).wantErr(t, http.StatusBadRequest, "invalid", "selector")
		e.do("PUT", base+"byok", o.key, map[string]string{"private_key": pemText}).wantErr(t, http.StatusBadRequest, "invalid", "selector")
		r = e.do("PUT", base+"byok", o.key, map[string]string{"selector": "corp1", "private_key": pemText})
		r.must(t, http.StatusUnprocessableEntity, &cf)
		if cf.Error.Code != "dkim_check_failed" || cf.Records[0].Type != "TXT" || cf.Records[0].Status != "missing" {
			t.Fatalf("BYOK without its TXT: %s", r.body)
		}
		e.dns.Add(t, `corp1._domainkey.rot.example. 300 IN TXT "`+txt+`"`)
		r = e.do("PUT", base+"byok", o.key, map[string]string{"selector": "corp1", "private_key": pemText})
		r.must(t, http.StatusOK, &d)
		if d.DKIMSelector != "corp1" || !strings.Contains(string(r.body), `"byok": true`) {
			t.Fatalf("BYOK: %s", r.body)
		}
		body := strings.Split(strings.TrimSpace(pemText), "\n")[1]
		for _, path := range []string{"/v1/orgs/acme/domains/rot.example", "/v1/orgs/acme/domains", "/v1/orgs/acme/domains/rot.example/events"} {
			if r := e.do("GET", path, o.key, nil); strings.Contains(string(r.body), body) || strings.Contains(string(r.body), "PRIVATE") {
				t.Errorf("GET %s shows the private key", path)
			}
		}
	})
}
