package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

func pemKey(t *testing.T) string {
	t.Helper()
	k, err := dkim.GenerateKey(dkim.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	p, err := dkim.MarshalPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDKIMKeyRotationSteps(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		org := newOrg(t, s, "acme")
		now := store.At(time.Now())
		d := store.Domain{ID: store.NewID(), OrgID: org.ID, Name: "rot.example", Token: store.NewID(), Status: "verified",
			DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: pemKey(t), Records: "[]", CreatedAt: now}
		if err := s.CreateDomain(ctx, d, store.Event{OrgID: org.ID, Subject: "domain:" + d.Name, Kind: "domain.added", At: now}); err != nil {
			t.Fatal(err)
		}
		ks, err := s.DKIMKeys(ctx, d.ID)
		if err != nil || len(ks) != 1 || ks[0].State != store.KeyActive || ks[0].Selector != "sg1" || ks[0].TXT == "" {
			t.Fatalf("keys after create = %+v, %v; want one active sg1", ks, err)
		}
		old := ks[0]
		next := store.DKIMKey{ID: store.NewID(), Selector: "sg1b", Algorithm: "ed25519", PrivateKey: pemKey(t), CreatedAt: now}
		if err := s.PublishNextKey(ctx, d, next, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.PublishNextKey(ctx, d, store.DKIMKey{Selector: "x", PrivateKey: pemKey(t)}, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second next key: %v, want ErrConflict", err)
		}
		st, err := s.LoadState(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Keys) != 1 || st.Keys[0].Selector != "sg1b" || st.Keys[0].DomainID != d.ID {
			t.Fatalf("State.Keys = %+v, want the next key sg1b", st.Keys)
		}
		removeAt := store.At(now.Add(time.Hour))
		if err := s.ActivateNextKey(ctx, d, next.ID, now, removeAt, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.ActivateNextKey(ctx, d, next.ID, now, removeAt, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second activation: %v, want ErrConflict (no double rotation)", err)
		}
		got, err := s.DomainByID(ctx, d.ID)
		if err != nil || got.DKIMSelector != "sg1b" || got.DKIMKey != next.PrivateKey {
			t.Fatalf("domain after rotation: selector %q, key switched %v, %v", got.DKIMSelector, got.DKIMKey == next.PrivateKey, err)
		}
		st, _ = s.LoadState(ctx, 0)
		if len(st.Keys) != 1 || st.Keys[0].Selector != "sg1" || st.Keys[0].TXT != old.TXT {
			t.Fatalf("State.Keys after rotation = %+v, want the retired sg1", st.Keys)
		}
		if due, err := s.RemovalsDue(ctx, now, 10); err != nil || len(due) != 0 {
			t.Fatalf("RemovalsDue before safe_to_remove_at = %+v, %v", due, err)
		}
		if err := s.RemoveRetiredKey(ctx, d, old.ID, now, nil, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("early removal: %v, want ErrConflict", err)
		}
		later := store.At(now.Add(2 * time.Hour))
		due, err := s.RemovalsDue(ctx, later, 10)
		if err != nil || len(due) != 1 || due[0].KeyID != old.ID {
			t.Fatalf("RemovalsDue = %+v, %v", due, err)
		}
		fresh := store.DKIMKey{ID: store.NewID(), Selector: "sg1", Algorithm: "ed25519", PrivateKey: pemKey(t), CreatedAt: later}
		if err := s.RemoveRetiredKey(ctx, d, old.ID, later, &fresh, nil); err != nil {
			t.Fatal(err)
		}
		ks, _ = s.DKIMKeys(ctx, d.ID)
		states := map[string]string{}
		for _, k := range ks {
			states[k.ID] = k.State
		}
		if states[old.ID] != store.KeyRemoved || states[next.ID] != store.KeyActive || states[fresh.ID] != store.KeyNext {
			t.Fatalf("states = %v", states)
		}
		if due, _ := s.RotationsDue(ctx, store.At(later.Add(time.Hour)), 10); len(due) != 1 || due[0].KeyID != fresh.ID {
			t.Fatalf("RotationsDue = %+v, want the fresh next key", due)
		}
	})
}

// TestCreateDomainWithNextAndBYOK: a registration with two selectors has
// an active and a next key at once; replacing the next key keeps one; a
// BYOK key becomes active without being published, the old one retires,
// and automatic rotation leaves a BYOK domain alone.
func TestCreateDomainWithNextAndBYOK(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		org := newOrg(t, s, "acme")
		now := store.At(time.Now())
		d := store.Domain{ID: store.NewID(), OrgID: org.ID, Name: "two.example", Token: store.NewID(), Status: "verified",
			DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: pemKey(t), Records: "[]", CreatedAt: now}
		next := store.DKIMKey{ID: store.NewID(), Selector: "sg1b", Algorithm: "ed25519", PrivateKey: pemKey(t), CreatedAt: now}
		if err := s.CreateDomainWithNext(ctx, d, next, store.Event{OrgID: org.ID, Subject: "domain:" + d.Name, Kind: "domain.added", At: now}); err != nil {
			t.Fatal(err)
		}
		ks, err := s.DKIMKeys(ctx, d.ID)
		if err != nil || len(ks) != 2 {
			t.Fatalf("keys = %+v, %v; want active and next", ks, err)
		}
		byState := map[string]store.DKIMKey{}
		for _, k := range ks {
			byState[k.State] = k
		}
		if byState[store.KeyActive].Selector != "sg1" || byState[store.KeyNext].Selector != "sg1b" || byState[store.KeyNext].TXT == "" {
			t.Fatalf("keys = %+v; want active sg1 and next sg1b with its TXT", ks)
		}
		if oldest, err := s.OldestActiveKey(ctx); err != nil || oldest.IsZero() || oldest.After(now.Time) {
			t.Fatalf("OldestActiveKey = %v, %v; want at or before %v", oldest, err, now)
		}
		repl := store.DKIMKey{ID: store.NewID(), Selector: "sg1b", Algorithm: "rsa-2048", PrivateKey: pemKey(t), CreatedAt: now}
		if err := s.ReplaceNextKey(ctx, d, next.ID, repl, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.ReplaceNextKey(ctx, d, next.ID, repl, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second replacement: %v, want ErrConflict", err)
		}
		st, _ := s.LoadState(ctx, 0)
		if len(st.Keys) != 1 || st.Keys[0].TXT != mustTXT(t, repl.PrivateKey) {
			t.Fatalf("State.Keys = %+v, want the replacement next key only", st.Keys)
		}

		own := store.DKIMKey{Selector: "corp1", Algorithm: "ed25519", PrivateKey: pemKey(t), CreatedAt: now}
		removeAt := store.At(now.Add(time.Hour))
		if err := s.ActivateBYOKKey(ctx, d, byState[store.KeyActive].ID, own, now, removeAt, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.ActivateBYOKKey(ctx, d, byState[store.KeyActive].ID, own, now, removeAt, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second BYOK activation: %v, want ErrConflict", err)
		}
		got, err := s.DomainByID(ctx, d.ID)
		if err != nil || got.DKIMSelector != "corp1" || got.DKIMKey != own.PrivateKey {
			t.Fatalf("domain after BYOK: selector %q, %v", got.DKIMSelector, err)
		}
		st, _ = s.LoadState(ctx, 0)
		var row store.DomainRow
		for _, r := range st.Domains {
			if r.ID == d.ID {
				row = r
			}
		}
		if !row.BYOK || row.Selector != "corp1" {
			t.Fatalf("state row = %+v, want BYOK corp1", row)
		}
		for _, k := range st.Keys {
			if k.Selector == "corp1" {
				t.Fatalf("State.Keys publishes the BYOK key: %+v", st.Keys)
			}
		}
		if len(st.Keys) != 2 {
			t.Fatalf("State.Keys = %+v, want the retired sg1 and the next sg1b", st.Keys)
		}
		if due, err := s.RotationsDue(ctx, store.At(now.Add(24*time.Hour)), 10); err != nil || len(due) != 0 {
			t.Fatalf("RotationsDue for a BYOK domain = %+v, %v; want none", due, err)
		}
		if err := s.UpdateDomainRecords(ctx, d, `[{"x":1}]`); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateDomainRecords(ctx, d, `[{"x":2}]`); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("records update on a stale read: %v, want ErrConflict", err)
		}
	})
}

func mustTXT(t *testing.T, pemText string) string {
	t.Helper()
	k, err := dkim.ParsePrivateKey(pemText)
	if err != nil {
		t.Fatal(err)
	}
	txt, err := dkim.TXTValue(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return txt
}
