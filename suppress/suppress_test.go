package suppress_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
	"github.com/sendergate/sendergate/suppress"
)

// TestRecordSyncLookup: a hard bounce suppresses at once, a single soft
// bounce does not, and the List follows the store (normalized lookups,
// deletion through Sync).
func TestRecordSyncLookup(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := store.At(time.Now())
		org := store.Org{ID: store.NewID(), Name: "acme", SandboxDomain: "acme.sandbox.test", CreatedAt: now}
		sb := store.Domain{ID: store.NewID(), OrgID: org.ID, Name: org.SandboxDomain, Sandbox: true, Token: store.NewID(), Status: "verified",
			DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048", DKIMKey: "k", Records: "[]", CreatedAt: now, VerifiedAt: now}
		if err := s.CreateOrg(ctx, org, sb); err != nil {
			t.Fatal(err)
		}
		rec := suppress.NewRecorder(s, store.SuppressionRules{SoftLimit: 2, SoftWindow: time.Hour}, prometheus.NewRegistry())
		n, err := rec.Record(ctx, suppress.Feedback{OrgID: org.ID, MessageID: "m1", Domain: "acme.example", Recipients: []suppress.Recipient{
			{Email: "Bob@EXAMPLE.com", Status: "5.1.1", Diagnostic: "user unknown", Kind: suppress.Hard},
			{Email: "soft@example.com", Status: "4.2.2", Kind: suppress.Soft},
			{Email: "not-an-address", Kind: suppress.Hard},
		}})
		if err != nil || n != 1 {
			t.Fatalf("record: %d %v", n, err)
		}
		l := suppress.NewList(s, prometheus.NewRegistry())
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			email string
			want  bool
		}{{"bob@example.com", true}, {"BOB@Example.COM", true}, {"soft@example.com", false}, {"alice@example.com", false}}
		for _, tc := range tests {
			if _, ok := l.Lookup(org.ID, tc.email); ok != tc.want {
				t.Errorf("Lookup(%s) = %v, want %v", tc.email, ok, tc.want)
			}
		}
		e, _ := l.Lookup(org.ID, "bob@example.com")
		if txt := e.Text("https://api.test", org.Name); !strings.Contains(txt, "hard bounce 5.1.1: user unknown") || !strings.Contains(txt, "DELETE https://api.test/v1/orgs/"+org.Name+"/suppressions/bob@example.com") {
			t.Errorf("text %q", txt)
		}
		if err := s.DeleteSuppression(ctx, org.ID, "bob@example.com"); err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := l.Lookup(org.ID, "bob@example.com"); ok {
			t.Error("deleted entry still suppressed after Sync")
		}
	})
}
