package domains

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/store"
)

// Rotation states of a domain (DKIMInfo.Rotation.Status).
const (
	// RotationReady: a rotation can switch signing now (POST .../dkim/rotate).
	RotationReady = "ready"
	// RotationWaiting: the retired key still occupies the other selector;
	// PossibleAt says when it is removed and a fresh next key published.
	RotationWaiting = "waiting"
	// RotationUnavailable: the domain cannot rotate (a domain registered
	// with one DKIM record, until it adds Record; the sandbox domain).
	RotationUnavailable = "unavailable"
)

// KeyInfo is one DKIM key as the API shows it: never the private key.
type KeyInfo struct {
	Selector  string `json:"selector"`
	Algorithm string `json:"algorithm"`
	// BYOK marks a key the customer brought and publishes as a TXT record
	// on their own DNS.
	BYOK           bool       `json:"byok,omitempty"`
	CreatedAt      *time.Time `json:"created_at"`
	ActivatedAt    *time.Time `json:"activated_at,omitempty"`
	RetiredAt      *time.Time `json:"retired_at,omitempty"`
	SafeToRemoveAt *time.Time `json:"safe_to_remove_at,omitempty"`
}

// RotationInfo says whether and when the domain's key can rotate.
type RotationInfo struct {
	Status string `json:"status"`
	// PossibleAt is when a waiting rotation becomes possible.
	PossibleAt *time.Time `json:"possible_at,omitempty"`
	// AutomaticAt is when the daemon rotates on its own (dkim.rotate_interval).
	AutomaticAt *time.Time `json:"automatic_at,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	// Record is the CNAME a domain registered with one DKIM record adds
	// to enable rotation.
	Record *Record `json:"record,omitempty"`
}

// DKIMInfo is the DKIM part of the Domain output: the key that signs, the
// one published next, the retired ones still published, and the rotation.
type DKIMInfo struct {
	Active   *KeyInfo     `json:"active"`
	Next     *KeyInfo     `json:"next"`
	Retired  []KeyInfo    `json:"retired"`
	Rotation RotationInfo `json:"rotation"`
}

func keyInfo(k store.DKIMKey) *KeyInfo {
	return &KeyInfo{Selector: k.Selector, Algorithm: k.Algorithm, BYOK: k.BYOK, CreatedAt: k.CreatedAt.Ptr(),
		ActivatedAt: k.ActivatedAt.Ptr(), RetiredAt: k.RetiredAt.Ptr(), SafeToRemoveAt: k.SafeToRemoveAt.Ptr()}
}

// keySet is a domain's keys by state; removed keys are left out.
type keySet struct {
	active, next *store.DKIMKey
	retired      []store.DKIMKey // oldest retirement first
}

func keysByState(ks []store.DKIMKey) keySet {
	var s keySet
	for i := range ks {
		switch ks[i].State {
		case store.KeyActive:
			s.active = &ks[i]
		case store.KeyNext:
			s.next = &ks[i]
		case store.KeyRetired:
			s.retired = append(s.retired, ks[i])
		}
	}
	sort.SliceStable(s.retired, func(i, j int) bool { return s.retired[i].SafeToRemoveAt.Before(s.retired[j].SafeToRemoveAt.Time) })
	return s
}

// dkimSelectors returns the selectors a domain delegates by CNAME, from
// its records. legacy is set for a domain registered with one DKIM
// record: the second selector is then SecondSelector of the first, which
// the customer has yet to publish.
func dkimSelectors(d store.Domain) (sels []string, legacy bool) {
	var recs []Record
	if err := json.Unmarshal([]byte(d.Records), &recs); err != nil {
		return nil, false
	}
	for _, r := range recs {
		if r.Purpose != PurposeDKIM {
			continue
		}
		if sel, _, ok := strings.Cut(canonical(r.Host), "._domainkey."); ok {
			sels = append(sels, sel)
		}
	}
	if len(sels) == 1 {
		return append(sels, SecondSelector(sels[0])), true
	}
	return sels, false
}

// KeyStatus builds the DKIM part of the Domain output from the domain and
// its keys (store.DKIMKeys). zone is dns.zone; rotateInterval is
// dkim.rotate_interval (0: no automatic rotation).
func KeyStatus(d store.Domain, ks []store.DKIMKey, zone string, rotateInterval time.Duration) DKIMInfo {
	set := keysByState(ks)
	out := DKIMInfo{Retired: []KeyInfo{}}
	if set.active != nil {
		out.Active = keyInfo(*set.active)
	}
	if set.next != nil {
		out.Next = keyInfo(*set.next)
	}
	for _, k := range set.retired {
		out.Retired = append(out.Retired, *keyInfo(k))
	}
	sels, legacy := dkimSelectors(d)
	switch {
	case d.Sandbox || len(sels) == 0:
		out.Rotation = RotationInfo{Status: RotationUnavailable,
			Reason: "the sandbox domain's key is served inside the provider zone and is not rotated"}
	case legacy:
		rec := DKIMRecord(d.Name, sels[1], d.Token, zone)
		out.Rotation = RotationInfo{Status: RotationUnavailable, Record: &rec,
			Reason: fmt.Sprintf("%s was registered with one DKIM record. Add this second CNAME (%s -> %s), then rotate: sendergate publishes the next key there before it signs with it, and rotates on its own from then on.",
				d.Name, rec.Host, rec.Value)}
	case set.next == nil && len(set.retired) > 0 && set.active != nil && !set.active.BYOK:
		at := set.retired[0].SafeToRemoveAt.Ptr()
		out.Rotation = RotationInfo{Status: RotationWaiting, PossibleAt: at,
			Reason: fmt.Sprintf("the retired key still occupies selector %s so that mail signed with it verifies; a fresh next key is published there once it is removed", set.retired[0].Selector)}
	default:
		out.Rotation = RotationInfo{Status: RotationReady}
		if rotateInterval > 0 && set.active != nil && !set.active.BYOK && set.next != nil {
			at := set.active.ActivatedAt.Add(rotateInterval).UTC()
			out.Rotation.AutomaticAt = &at
		}
	}
	return out
}

// managedAlgorithm is the algorithm of a fresh key that follows a key of
// algorithm alg: a BYOK RSA key of any size is followed by RSA-2048.
func managedAlgorithm(alg string) string {
	if alg == AlgorithmEd25519 {
		return AlgorithmEd25519
	}
	return AlgorithmRSA2048
}

// newKey generates a key of algorithm alg (rsa-2048 or ed25519) for sel.
func newKey(alg, sel string, now time.Time) (store.DKIMKey, error) {
	key, err := dkim.GenerateKey(dkim.Algorithm(alg))
	if err != nil {
		return store.DKIMKey{}, fmt.Errorf("domains: key for selector %s: %w", sel, err)
	}
	pem, err := dkim.MarshalPrivateKey(key)
	if err != nil {
		return store.DKIMKey{}, fmt.Errorf("domains: key for selector %s: %w", sel, err)
	}
	txt, err := dkim.TXTValue(key.Public())
	if err != nil {
		return store.DKIMKey{}, fmt.Errorf("domains: key for selector %s: %w", sel, err)
	}
	return store.DKIMKey{ID: store.NewID(), Selector: sel, Algorithm: alg, PrivateKey: pem, TXT: txt, CreatedAt: store.At(now)}, nil
}

// freeSelector is a delegated selector no key occupies (active, next or
// retired), or "".
func freeSelector(sels []string, set keySet) string {
	used := map[string]bool{}
	if set.active != nil {
		used[set.active.Selector] = true
	}
	if set.next != nil {
		used[set.next.Selector] = true
	}
	for _, k := range set.retired {
		used[k.Selector] = true
	}
	for _, s := range sels {
		if !used[s] {
			return s
		}
	}
	return ""
}

// servedKeys are the keys the zone publishes besides the active one, as
// the loader hands them to the zone (next and retired, not BYOK).
func servedKeys(ks []store.DKIMKey) []store.KeyRow {
	var out []store.KeyRow
	for _, k := range ks {
		if (k.State == store.KeyNext || k.State == store.KeyRetired) && !k.BYOK && k.TXT != "" && k.TXT != "-" {
			out = append(out, store.KeyRow{DomainID: k.DomainID, Selector: k.Selector, TXT: k.TXT})
		}
	}
	return out
}

// DKIM returns the DKIM part of d's Domain output (KeyStatus with the
// service's zone and dkim.rotate_interval).
func (s *Service) DKIM(ctx context.Context, d store.Domain) (DKIMInfo, error) {
	ks, err := s.st.DKIMKeys(ctx, d.ID)
	if err != nil {
		return DKIMInfo{}, err
	}
	return KeyStatus(d, ks, s.opts.Zone, s.opts.RotateInterval), nil
}
