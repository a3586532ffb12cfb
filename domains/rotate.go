package domains

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sendergate/sendergate/store"
)

// CheckError is a DKIM step refused because DNS does not show what it
// needs (HTTP 422): Records holds each record checked, with its status and
// reason (the next selector's CNAME for a rotation, the customer's TXT
// record for a BYOK key). Nothing was switched.
type CheckError struct {
	Message string
	Records []Record
}

// Error returns the message.
func (e *CheckError) Error() string { return e.Message }

// Rotate switches the domain's signing to its next key (POST
// .../dkim/rotate), after checking through the resolvers that the next
// selector's CNAME leads to the next key's TXT record, as a receiver finds
// it. The key that signed until then is retired: still published for
// dkim.retire_after so mail already signed with it verifies.
//
// algorithm, when set, is the algorithm the new key must have (rsa-2048 or
// ed25519): a next key of another algorithm is replaced first, and the
// check then finds the new one. A domain without a next key gets one at a
// free delegated selector first (a domain registered with one DKIM
// record: at its second selector, which the check then asks the customer
// to publish). While the retired key still occupies the other selector,
// the answer is a StateError saying when a rotation becomes possible. A
// failed check switches nothing and returns a *CheckError.
func (s *Service) Rotate(ctx context.Context, org store.Org, name, algorithm string) (store.Domain, error) {
	alg := ""
	if algorithm != "" {
		alg = strings.ToLower(strings.TrimSpace(algorithm))
		if alg != AlgorithmRSA2048 && alg != AlgorithmEd25519 {
			return store.Domain{}, &FieldError{"algorithm", fmt.Sprintf("unknown algorithm %q: use %q or %q", algorithm, AlgorithmRSA2048, AlgorithmEd25519)}
		}
	}
	d, err := s.st.DomainByName(ctx, org.ID, name)
	if err != nil {
		return store.Domain{}, err
	}
	return s.rotate(ctx, d, alg, "")
}

// RotateDue is the automatic rotation of the daemon (store.RotationsDue):
// Rotate without a new algorithm, when nextID is still the domain's next
// key. Another instance having done it is store.ErrConflict.
func (s *Service) RotateDue(ctx context.Context, due store.DueKey) (store.Domain, error) {
	d, err := s.st.DomainByID(ctx, due.DomainID)
	if err != nil {
		return store.Domain{}, err
	}
	return s.rotate(ctx, d, "", due.KeyID)
}

func (s *Service) rotate(ctx context.Context, d store.Domain, alg, wantNext string) (store.Domain, error) {
	sels, legacy := dkimSelectors(d)
	if d.Sandbox || len(sels) == 0 {
		return d, &StateError{Code: "sandbox_domain", Message: fmt.Sprintf("%s is the organization's sandbox domain: its key is served inside the provider zone and is not rotated", d.Name)}
	}
	ks, err := s.st.DKIMKeys(ctx, d.ID)
	if err != nil {
		return d, err
	}
	set := keysByState(ks)
	if set.active == nil {
		return d, fmt.Errorf("domains: %s has no active DKIM key", d.Name)
	}
	if wantNext != "" && (set.next == nil || set.next.ID != wantNext) {
		return d, store.ErrConflict // rotated meanwhile
	}
	now := s.opts.Now()
	switch {
	case set.next == nil:
		sel := freeSelector(sels, set)
		if sel == "" {
			at := set.retired[0].SafeToRemoveAt
			return d, &StateError{Code: "rotation_pending", Message: fmt.Sprintf(
				"%s cannot rotate yet: the retired key at selector %s stays published until %s so that mail signed with it verifies; then a fresh next key takes its selector and a rotation is possible",
				d.Name, set.retired[0].Selector, at.UTC().Format(time.RFC3339))}
		}
		k, err := newKey(nonEmpty(alg, managedAlgorithm(set.active.Algorithm)), sel, now)
		if err != nil {
			return d, err
		}
		if err := s.st.PublishNextKey(ctx, d, k, []store.Event{s.keyEvent(d, "dkim.next_published", nextDetail(k), now)}); err != nil {
			return d, err
		}
		set.next = &k
	case alg != "" && set.next.Algorithm != alg:
		k, err := newKey(alg, set.next.Selector, now)
		if err != nil {
			return d, err
		}
		ev := s.keyEvent(d, "dkim.next_published", nextDetail(k)+fmt.Sprintf(", replacing the %s key there", set.next.Algorithm), now)
		if err := s.st.ReplaceNextKey(ctx, d, set.next.ID, k, []store.Event{ev}); err != nil {
			return d, err
		}
		set.next = &k
	}
	rec, err := s.checkNext(ctx, d, *set.next)
	if err != nil {
		return d, err
	}
	if legacy {
		if err := s.addRecord(ctx, d, rec); err != nil {
			return d, err
		}
	}
	old := set.active
	removeAt := now.Add(s.opts.RetireAfter)
	how := "" // a rotation through the API
	if wantNext != "" {
		how = "automatic rotation (dkim.rotate_interval): "
	}
	evs := []store.Event{
		s.keyEvent(d, "dkim.rotated", how+fmt.Sprintf("signing with selector %s (%s) instead of %s", set.next.Selector, set.next.Algorithm, old.Selector), now),
		s.keyEvent(d, "dkim.retired", fmt.Sprintf("selector %s (%s) stays published until %s", old.Selector, old.Algorithm, removeAt.UTC().Format(time.RFC3339)), now),
	}
	if err := s.st.ActivateNextKey(ctx, d, set.next.ID, store.At(now), store.At(removeAt), evs); err != nil {
		return d, err
	}
	s.opts.Logger.Info("dkim key rotated", "domain", d.Name, "org", orgName(ctx, s.st, d.OrgID), "selector", set.next.Selector, "retired", old.Selector)
	return s.st.DomainByID(ctx, d.ID)
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func nextDetail(k store.DKIMKey) string {
	return fmt.Sprintf("next key (%s) published at selector %s", k.Algorithm, k.Selector)
}

func (s *Service) keyEvent(d store.Domain, kind, detail string, at time.Time) store.Event {
	return store.Event{OrgID: d.OrgID, Subject: subject(d.Name), Kind: kind, Detail: detail, At: store.At(at)}
}

// checkNext checks that the CNAME of next's selector leads to next's TXT
// record. Shortly after a key was published the provider zone may not
// serve it yet (each instance follows the store within the state
// propagation time): a record whose CNAME is right but whose target lags
// is checked again until PublishWait has passed.
func (s *Service) checkNext(ctx context.Context, d store.Domain, next store.DKIMKey) (Record, error) {
	want := DKIMRecord(d.Name, next.Selector, d.Token, s.opts.Zone)
	want.Want = []Served{{Type: "TXT", Value: next.TXT}}
	deadline := time.Now().Add(s.opts.PublishWait)
	for {
		cctx, cancel := context.WithTimeout(ctx, s.opts.CheckTimeout)
		rec := Check(cctx, s.opts.Resolver, []Record{want})[0]
		cancel()
		if err := ctx.Err(); err != nil {
			return rec, fmt.Errorf("domains: check of %s interrupted: %w", want.Host, err)
		}
		if rec.Status == StatusOK {
			return rec, nil
		}
		targetLags := rec.Status == StatusError || (rec.Status == StatusMismatch && strings.Contains(rec.Found, " -> "))
		if !targetLags || time.Now().After(deadline) {
			return rec, &CheckError{Records: []Record{rec}, Message: fmt.Sprintf(
				"%s was not rotated: the next key's selector %s does not resolve to the next key yet (%s). Nothing changed; signing stays on selector %s.",
				d.Name, next.Selector, rec.Status, d.DKIMSelector)}
		}
		select {
		case <-ctx.Done():
			return rec, fmt.Errorf("domains: check of %s interrupted: %w", want.Host, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// addRecord adds the checked second DKIM record to a legacy domain's
// records, so that verification requires it from now on.
func (s *Service) addRecord(ctx context.Context, d store.Domain, rec Record) error {
	var recs []Record
	if err := json.Unmarshal([]byte(d.Records), &recs); err != nil {
		return fmt.Errorf("domains: records of %s: %w", d.Name, err)
	}
	at := 0
	for i, r := range recs {
		if r.Purpose == PurposeDKIM {
			at = i + 1
		}
	}
	rec.Want = nil
	recs = append(recs[:at], append([]Record{rec}, recs[at:]...)...)
	b, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	return s.st.UpdateDomainRecords(ctx, d, string(b))
}

// RemoveRetired is the removal step of the daemon (store.RemovalsDue):
// once the retired key keyID is past its safe_to_remove_at, it is removed
// (the zone stops publishing it), and a fresh next key, of the active
// key's algorithm, takes its selector when that is a delegated one and the
// domain has no next key. Another instance having done it is
// store.ErrConflict.
func (s *Service) RemoveRetired(ctx context.Context, due store.DueKey) error {
	d, err := s.st.DomainByID(ctx, due.DomainID)
	if err != nil {
		return err
	}
	ks, err := s.st.DKIMKeys(ctx, d.ID)
	if err != nil {
		return err
	}
	set := keysByState(ks)
	var old *store.DKIMKey
	for i := range set.retired {
		if set.retired[i].ID == due.KeyID {
			old = &set.retired[i]
		}
	}
	if old == nil {
		return store.ErrConflict
	}
	now := s.opts.Now()
	evs := []store.Event{s.keyEvent(d, "dkim.removed", fmt.Sprintf("retired key at selector %s (%s) no longer published", old.Selector, old.Algorithm), now)}
	var next *store.DKIMKey
	sels, _ := dkimSelectors(d)
	if set.next == nil && set.active != nil && !d.Sandbox && slices.Contains(sels, old.Selector) {
		k, err := newKey(managedAlgorithm(set.active.Algorithm), old.Selector, now)
		if err != nil {
			return err
		}
		next = &k
		evs = append(evs, s.keyEvent(d, "dkim.next_published", nextDetail(k), now))
	}
	if err := s.st.RemoveRetiredKey(ctx, d, old.ID, store.At(now), next, evs); err != nil {
		return err
	}
	s.opts.Logger.Info("retired dkim key removed", "domain", d.Name, "org", orgName(ctx, s.st, d.OrgID), "selector", old.Selector, "fresh_next", next != nil)
	return nil
}
