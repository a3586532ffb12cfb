package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// TestAPIKeyInOrg: the key and the organization named in a request come
// from one query; a missing key is ErrNotFound whatever the organization,
// a missing organization is not found alongside the key.
func TestAPIKeyInOrg(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme := newOrg(t, s, "acme")
		other := newOrg(t, s, "other")
		k := store.APIKey{ID: store.NewID(), OrgID: acme.ID, Hash: "abc", CreatedAt: store.At(time.Now())}
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name, id, org string
			want          store.Org
			found         bool
		}{
			{name: "own organization", id: k.ID, org: "acme", want: acme, found: true},
			{name: "another organization", id: k.ID, org: "other", want: other, found: true},
			{name: "no such organization", id: k.ID, org: "nobody"},
		} {
			got, o, found, err := s.APIKeyInOrg(ctx, tt.id, tt.org)
			if err != nil || got != k || found != tt.found || o != tt.want {
				t.Errorf("%s: %+v, %+v, %v, %v; want %+v, %+v, %v", tt.name, got, o, found, err, k, tt.want, tt.found)
			}
		}
		for _, org := range []string{"acme", "nobody"} {
			if _, _, _, err := s.APIKeyInOrg(ctx, "nokey", org); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("missing key in %s: %v, want ErrNotFound", org, err)
			}
		}
	})
}
