package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// TestReturnPathOwner: the bounce receiver's lookup finds the domain
// behind LABEL.D and T.bounce.ZONE only while the domain can send, and
// not a pending copy of the same name in another organization.
func TestReturnPathOwner(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme, other := newOrg(t, s, "acme"), newOrg(t, s, "other")
		now := store.At(time.Now())
		add := func(o store.Org, name, token, rp, status string) {
			t.Helper()
			d := store.Domain{ID: store.NewID(), OrgID: o.ID, Name: name, Token: token, ReturnPath: rp, Status: status,
				DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: "pem", Records: "[]", CreatedAt: now}
			if err := s.CreateDomain(ctx, d, store.Event{OrgID: o.ID, Subject: "domain:" + name, Kind: "domain.added", At: now}); err != nil {
				t.Fatal(err)
			}
		}
		add(acme, "example.com", "tokrp", "mailing", "verified")
		add(other, "example.com", "tokother", "mailing", "pending")
		add(acme, "plain.example", "tokplain", "", "failing")
		add(acme, "new.example", "toknew", "", "pending")
		for _, tt := range []struct {
			rp, org, domain string
		}{
			{"mailing.example.com", acme.ID, "example.com"},
			{"tokplain.bounce.sg.localhost", acme.ID, "plain.example"},
			{"toknew.bounce.sg.localhost", "", ""},     // pending
			{"tokrp.bounce.sg.localhost", "", ""},      // has a return path: LABEL.D is its bounce domain
			{"tokother.bounce.sg.localhost", "", ""},   // pending, other organization
			{"other.example.com", "", ""},              // wrong label
			{"x.tokplain.bounce.sg.localhost", "", ""}, // not a token label
			{"tokplain.bounce.other.example", "", ""},  // another zone
			{"com", "", ""},
		} {
			var got store.ReturnPathOwner
			label, name, token, ok := domains.ParseEnvelopeDomain(tt.rp, "sg.localhost")
			if ok {
				var err error
				if got, ok, err = s.ReturnPathOwner(ctx, label, name, token); err != nil {
					t.Fatal(err)
				}
			}
			if ok != (tt.org != "") || got.OrgID != tt.org || got.Domain != tt.domain {
				t.Errorf("%s: %+v %v, want org %q domain %q", tt.rp, got, ok, tt.org, tt.domain)
			}
		}
	})
}
