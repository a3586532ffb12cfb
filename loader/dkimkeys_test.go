package loader_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/loader"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// TestZoneServesNextAndRetiredKeys: a next key appears at its selector
// (incremental patch), after the switch the snapshot signs with the new
// key while the retired one stays served, and its removal takes it away.
func TestZoneServesNextAndRetiredKeys(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		z := newZone(t)
		e := loader.NewEngine(st, "sg.localhost", z, zopts, policy.Options{})
		if err := e.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		d := addDomain(t, st, f.other, "rot.example", "verified", "")
		k, err := dkim.GenerateKey(dkim.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		pemText, _ := dkim.MarshalPrivateKey(k)
		txt, _ := dkim.TXTValue(k.Public())
		now := store.At(time.Now())
		next := store.DKIMKey{ID: store.NewID(), Selector: "sg1b", Algorithm: "ed25519", PrivateKey: pemText, CreatedAt: now}
		if err := st.PublishNextKey(ctx, d, next, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		at := func(sel string) string {
			rrs := z.Records(domains.DKIMTarget(sel, d.Token, "sg.localhost"))
			if len(rrs) != 1 {
				return ""
			}
			return rrs[0].String()
		}
		oldRR := at("sg1")
		if oldRR == "" || at("sg1b") == "" {
			t.Fatalf("before the switch: sg1 %q, sg1b %q; want both served", oldRR, at("sg1b"))
		}
		if err := st.ActivateNextKey(ctx, d, next.ID, now, store.At(now.Add(time.Hour)), nil); err != nil {
			t.Fatal(err)
		}
		if err := e.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if at("sg1") != oldRR || at("sg1b") == "" {
			t.Fatalf("after the switch: sg1 %q (want the retired key still), sg1b %q", at("sg1"), at("sg1b"))
		}
		s, _ := e.Current()
		if dom, ok := s.Domain(f.other.ID, "rot.example"); !ok || dom.Selector != "sg1b" {
			t.Errorf("snapshot domain %+v, %v: want it signing with selector sg1b", dom, ok)
		}
		ks, _ := st.DKIMKeys(ctx, d.ID)
		later := store.At(now.Add(2 * time.Hour))
		if err := st.RemoveRetiredKey(ctx, d, ks[0].ID, later, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if at("sg1") != "" {
			t.Errorf("removed key still served: %q", at("sg1"))
		}
		if got := at("sg1b"); got == "" || !strings.Contains(got, txt[len(txt)-20:]) {
			t.Errorf("active key at sg1b = %q", got)
		}
	})
}
