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
