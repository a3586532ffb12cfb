package domains_test

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/internal/clocktest"
	"github.com/sendergate/sendergate/internal/dnstest"
	"github.com/sendergate/sendergate/loader"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
	"github.com/sendergate/sendergate/zone"
)

const rotZone = "sg.localhost"

var (
	rotT0   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rotOpts = domains.ZoneOptions{Zone: rotZone, BounceMX: "mx." + rotZone, SPF: "v=spf1 -all"}
)

// rotEnv is a Service on a real store whose resolver is the customer's
// DNS (dnstest), which delegates the provider zone to a real zone.Server
// kept up to date by the loader, as a receiver reaches sendergate's zone.
type rotEnv struct {
	st    *store.Store
	cust  *dnstest.Server
	z     *zone.Server
	eng   *policy.Engine
	clock *clocktest.Clock
	svc   *domains.Service
	org   store.Org
}

func newRotEnv(t *testing.T, st *store.Store) *rotEnv {
	t.Helper()
	ctx := context.Background()
	z, err := zone.New(zone.Config{Zone: rotZone, Nameservers: []string{"ns1." + rotZone}})
	if err != nil {
		t.Fatal(err)
	}
	if err := z.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = z.Shutdown(context.Background()) })
	e := &rotEnv{st: st, cust: dnstest.NewServer(t), z: z, clock: clocktest.New(rotT0)}
	e.cust.Delegate(rotZone, z.UDPAddr().String())
	e.eng = loader.NewEngine(st, rotZone, z, rotOpts, policy.Options{})
	res, err := domains.NewDNSResolver([]string{e.cust.Addr()}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = domains.NewService(st, domains.ServiceOptions{Zone: rotZone, Resolver: res, Served: rotOpts, Interval: time.Hour,
		Grace: 3 * time.Hour, CheckTimeout: 5 * time.Second, RetireAfter: 2 * time.Hour, PublishWait: 5 * time.Second, Now: e.clock.Now})
	now := store.At(rotT0)
	e.org = store.Org{ID: store.NewID(), Name: "acme", SandboxDomain: "acme.sandbox." + rotZone, CreatedAt: now}
	sb := store.Domain{ID: store.NewID(), OrgID: e.org.ID, Name: e.org.SandboxDomain, Sandbox: true, Token: domains.NewToken(),
		Status: "verified", DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: pemKey(t), Records: "[]", CreatedAt: now, VerifiedAt: now}
	if err := st.CreateOrg(ctx, e.org, sb); err != nil {
		t.Fatal(err)
	}
	if err := e.eng.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	// The zone follows the store as the daemon's refresh loop makes it.
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for rctx.Err() == nil {
			_ = e.eng.Refresh(rctx)
			select {
			case <-rctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

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

// refresh brings the zone to the stored state now.
func (e *rotEnv) refresh(t *testing.T) {
	t.Helper()
	if err := e.eng.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// addVerified registers name, publishes its records at the customer's
// DNS and verifies it.
func (e *rotEnv) addVerified(t *testing.T, name string) store.Domain {
	t.Helper()
	ctx := context.Background()
	d, err := e.svc.Create(ctx, e.org, domains.Input{Name: name, DKIMAlgorithm: "ed25519"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records(t, d) {
		e.cust.PublishCNAME(r.Host, r.Value)
	}
	e.refresh(t)
	d, err = e.svc.Verify(ctx, e.org, name)
	if err != nil || d.Status != "verified" {
		t.Fatalf("verify %s: status %s, %v (records %s)", name, d.Status, err, d.Records)
	}
	return d
}

func records(t *testing.T, d store.Domain) []domains.Record {
	t.Helper()
	var recs []domains.Record
	if err := json.Unmarshal([]byte(d.Records), &recs); err != nil {
		t.Fatalf("records of %s: %v", d.Name, err)
	}
	return recs
}

func (e *rotEnv) status(t *testing.T, name string) (store.Domain, domains.DKIMInfo) {
	t.Helper()
	d, err := e.st.DomainByName(context.Background(), e.org.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := e.st.DKIMKeys(context.Background(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	return d, domains.KeyStatus(d, ks, rotZone, 0)
}

// served is the DKIM TXT the zone serves at a selector of d ("" for none).
func (e *rotEnv) served(d store.Domain, sel string) string {
	rrs := e.z.Records(domains.DKIMTarget(sel, d.Token, rotZone))
	if len(rrs) != 1 {
		return ""
	}
	return rrs[0].String()
}

func kinds(t *testing.T, st *store.Store, d store.Domain) string {
	t.Helper()
	evs, err := st.Events(context.Background(), d.OrgID, "domain:"+d.Name)
	if err != nil {
		t.Fatal(err)
	}
	var ks []string
	for _, ev := range evs {
		if strings.HasPrefix(ev.Kind, "dkim.") {
			ks = append(ks, ev.Kind)
		}
	}
	return strings.Join(ks, ",")
}

// TestRotationThroughDNS: a new registration verifies with both
// selectors; a rotation whose second CNAME is missing changes nothing; with
// it, signing switches, the old key stays served until its removal, a
// second rotation waits for that, and the removal publishes a fresh next
// key at the freed selector; a rotation to another algorithm replaces the
// next key first and still passes its check.
func TestRotationThroughDNS(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newRotEnv(t, st)
		d := e.addVerified(t, "rot.example")
		if n := len(records(t, d)); n != 2 {
			t.Fatalf("%d records, want 2 (two DKIM selectors)", n)
		}
		_, info := e.status(t, d.Name)
		if info.Active == nil || info.Active.Selector != "sg1" || info.Next == nil || info.Next.Selector != "sg1b" ||
			info.Rotation.Status != domains.RotationReady || len(info.Retired) != 0 {
			t.Fatalf("new domain's keys = %+v", info)
		}
		oldTXT := e.served(d, "sg1")

		// The second CNAME missing: refused with the record's reason.
		e.cust.Remove("sg1b._domainkey.rot.example")
		_, err := e.svc.Rotate(ctx, e.org, d.Name, "")
		var ce *domains.CheckError
		if !errors.As(err, &ce) || len(ce.Records) != 1 || ce.Records[0].Status != domains.StatusMissing ||
			!strings.Contains(ce.Records[0].Reason, "sg1b._domainkey.rot.example") {
			t.Fatalf("rotation without the CNAME: %v (%+v), want a CheckError naming the missing record", err, ce)
		}
		if got, info := e.status(t, d.Name); got.DKIMSelector != "sg1" || info.Next == nil || info.Next.Selector != "sg1b" {
			t.Fatalf("after a refused rotation: signing %s, keys %+v; want unchanged", got.DKIMSelector, info)
		}

		// With it: the switch.
		e.cust.PublishCNAME("sg1b._domainkey.rot.example", domains.DKIMTarget("sg1b", d.Token, rotZone))
		got, err := e.svc.Rotate(ctx, e.org, d.Name, "")
		if err != nil || got.DKIMSelector != "sg1b" {
			t.Fatalf("rotation: selector %q, %v", got.DKIMSelector, err)
		}
		e.refresh(t)
		_, info = e.status(t, d.Name)
		if info.Active.Selector != "sg1b" || info.Next != nil || len(info.Retired) != 1 || info.Retired[0].Selector != "sg1" ||
			!info.Retired[0].SafeToRemoveAt.Equal(rotT0.Add(2*time.Hour)) || info.Rotation.Status != domains.RotationWaiting ||
			!info.Rotation.PossibleAt.Equal(rotT0.Add(2*time.Hour)) {
			t.Fatalf("after the rotation: %+v (rotation %+v)", info, info.Rotation)
		}
		if e.served(d, "sg1") != oldTXT || e.served(d, "sg1b") == "" {
			t.Fatalf("after the rotation the zone serves sg1 %q (want the retired key), sg1b %q", e.served(d, "sg1"), e.served(d, "sg1b"))
		}
		var se *domains.StateError
		if _, err := e.svc.Rotate(ctx, e.org, d.Name, ""); !errors.As(err, &se) || se.Code != "rotation_pending" ||
			!strings.Contains(se.Message, rotT0.Add(2*time.Hour).Format(time.RFC3339)) {
			t.Fatalf("second rotation before the removal: %v, want rotation_pending naming when", err)
		}

		// Past retire_after: removed, and a fresh next key at sg1.
		e.clock.Set(rotT0.Add(2*time.Hour + time.Minute))
		due, err := st.RemovalsDue(ctx, store.At(e.clock.Now()), 10)
		if err != nil || len(due) != 1 {
			t.Fatalf("RemovalsDue = %+v, %v", due, err)
		}
		if err := e.svc.RemoveRetired(ctx, due[0]); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.RemoveRetired(ctx, due[0]); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second removal: %v, want ErrConflict", err)
		}
		e.refresh(t)
		_, info = e.status(t, d.Name)
		if info.Next == nil || info.Next.Selector != "sg1" || len(info.Retired) != 0 || info.Rotation.Status != domains.RotationReady {
			t.Fatalf("after the removal: %+v", info)
		}
		if s := e.served(d, "sg1"); s == "" || s == oldTXT {
			t.Fatalf("sg1 after the removal serves %q, want the fresh next key", s)
		}

		// To RSA: the next key is replaced, then checked and activated.
		got, err = e.svc.Rotate(ctx, e.org, d.Name, "RSA-2048")
		if err != nil || got.DKIMSelector != "sg1" || got.DKIMAlgorithm != "rsa-2048" {
			t.Fatalf("rotation to rsa-2048: selector %q algorithm %q, %v", got.DKIMSelector, got.DKIMAlgorithm, err)
		}
		if k, err := dkim.ParsePrivateKey(got.DKIMKey); err != nil || !strings.Contains(mustTXT(t, k), "k=rsa") {
			t.Fatalf("signing key after the rotation to rsa: %v", err)
		}
		if _, err := e.svc.Rotate(ctx, e.org, d.Name, "dsa"); err == nil || !strings.Contains(err.Error(), "algorithm") {
			t.Errorf("unknown algorithm: %v, want a field error", err)
		}
		if got := kinds(t, st, d); got != "dkim.next_published,dkim.rotated,dkim.retired,dkim.removed,dkim.next_published,dkim.next_published,dkim.rotated,dkim.retired" {
			t.Errorf("events = %s", got)
		}
		// Both selectors keep verifying through the zone.
		d, err = e.svc.Verify(ctx, e.org, d.Name)
		if err != nil || d.Status != "verified" {
			t.Errorf("verify after rotations: %s, %v (%s)", d.Status, err, d.Records)
		}
	})
}

func mustTXT(t *testing.T, k crypto.Signer) string {
	t.Helper()
	txt, err := dkim.TXTValue(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return txt
}

// TestLegacyDomainEnablesRotation: a domain registered with one DKIM
// record is told the CNAME to add; a rotation before it is refused naming
// it, and after it switches and the record becomes part of the domain's
// records.
func TestLegacyDomainEnablesRotation(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newRotEnv(t, st)
		now := store.At(rotT0)
		tok := domains.NewToken()
		rec := domains.DKIMRecord("old.example", "sg1", tok, rotZone)
		recs, _ := json.Marshal([]domains.Record{rec})
		d := store.Domain{ID: store.NewID(), OrgID: e.org.ID, Name: "old.example", Token: tok, Status: "verified", DKIMSelector: "sg1",
			DKIMAlgorithm: "ed25519", DKIMKey: pemKey(t), Records: string(recs), CreatedAt: now, VerifiedAt: now}
		if err := st.CreateDomain(ctx, d, store.Event{OrgID: e.org.ID, Subject: "domain:old.example", Kind: "domain.added", At: now}); err != nil {
			t.Fatal(err)
		}
		e.cust.PublishCNAME(rec.Host, rec.Value)
		e.refresh(t)
		_, info := e.status(t, d.Name)
		if info.Rotation.Status != domains.RotationUnavailable || info.Rotation.Record == nil ||
			info.Rotation.Record.Host != "sg1b._domainkey.old.example" || info.Rotation.Record.Value != domains.DKIMTarget("sg1b", tok, rotZone) {
			t.Fatalf("legacy rotation = %+v, want unavailable with the sg1b CNAME", info.Rotation)
		}
		_, err := e.svc.Rotate(ctx, e.org, d.Name, "")
		var ce *domains.CheckError
		if !errors.As(err, &ce) || ce.Records[0].Host != "sg1b._domainkey.old.example" || ce.Records[0].Status != domains.StatusMissing {
			t.Fatalf("legacy rotation without the record: %v, want a CheckError for sg1b", err)
		}
		if got, _ := e.status(t, d.Name); got.DKIMSelector != "sg1" || len(records(t, got)) != 1 {
			t.Fatalf("refused legacy rotation changed the domain: %s, %s", got.DKIMSelector, got.Records)
		}
		// The still legacy domain keeps verifying with its one record.
		if got, err := e.svc.Verify(ctx, e.org, d.Name); err != nil || got.Status != "verified" {
			t.Fatalf("legacy verify: %s, %v (%s)", got.Status, err, got.Records)
		}
		e.cust.PublishCNAME(info.Rotation.Record.Host, info.Rotation.Record.Value)
		got, err := e.svc.Rotate(ctx, e.org, d.Name, "")
		if err != nil || got.DKIMSelector != "sg1b" || len(records(t, got)) != 2 {
			t.Fatalf("legacy rotation with the record: %s, %v (%s)", got.DKIMSelector, err, got.Records)
		}
		if _, info := e.status(t, d.Name); info.Rotation.Status != domains.RotationWaiting {
			t.Errorf("rotation after the first switch = %+v, want waiting", info.Rotation)
		}
	})
}

// TestBYOK: the customer's own key is validated (400 naming the field),
// signs only once their TXT carries it (a wrong or missing one changes
// nothing), is never served by the zone, and a rotation returns to the
// delegated selectors.
func TestBYOK(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newRotEnv(t, st)
		d := e.addVerified(t, "own.example")
		own := pemKey(t)
		k, _ := dkim.ParsePrivateKey(own)
		ownTXT := mustTXT(t, k)
		rsa, _ := dkim.GenerateKey(dkim.RSA2048)
		rsaPEM, _ := dkim.MarshalPrivateKey(rsa)

		var fe *domains.FieldError
		for _, tt := range []struct{ name, sel, key, field string }{
			{"no selector", "", own, "selector"},
			{"bad selector", "corp_1", own, "selector"},
			{"delegated selector", "sg1b", own, "selector"},
			{"no key", "corp1", "", "private_key"},
			{"not PEM", "corp1", "hello", "private_key"},
			{"public key", "corp1", "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n", "private_key"},
		} {
			if _, err := e.svc.SetBYOK(ctx, e.org, d.Name, tt.sel, tt.key); !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("%s: %v, want a field error on %s", tt.name, err, tt.field)
			}
		}

		var ce *domains.CheckError
		if _, err := e.svc.SetBYOK(ctx, e.org, d.Name, "corp1", own); !errors.As(err, &ce) || ce.Records[0].Status != domains.StatusMissing {
			t.Fatalf("BYOK without its TXT: %v, want a CheckError (missing)", err)
		}
		e.cust.Add(t, `corp1._domainkey.own.example. 300 IN TXT "`+mustTXT(t, rsa)+`"`)
		if _, err := e.svc.SetBYOK(ctx, e.org, d.Name, "corp1", own); !errors.As(err, &ce) || ce.Records[0].Status != domains.StatusMismatch {
			t.Fatalf("BYOK with another key's TXT: %v, want a CheckError (mismatch)", err)
		}
		if got, _ := e.status(t, d.Name); got.DKIMSelector != "sg1" {
			t.Fatalf("a refused BYOK switched signing to %s", got.DKIMSelector)
		}
		e.cust.Remove("corp1._domainkey.own.example")
		e.cust.Add(t, `corp1._domainkey.own.example. 300 IN TXT "`+ownTXT+`"`)
		got, err := e.svc.SetBYOK(ctx, e.org, d.Name, "Corp1", own)
		if err != nil || got.DKIMSelector != "corp1" || got.DKIMKey == "" {
			t.Fatalf("BYOK with its TXT: %s, %v", got.DKIMSelector, err)
		}
		e.refresh(t)
		_, info := e.status(t, d.Name)
		if !info.Active.BYOK || info.Active.Selector != "corp1" || info.Next == nil || len(info.Retired) != 1 {
			t.Fatalf("keys after BYOK = %+v", info)
		}
		if s := e.served(d, "corp1"); s != "" {
			t.Errorf("the zone serves the BYOK key: %s", s)
		}
		if e.served(d, "sg1") == "" || e.served(d, "sg1b") == "" {
			t.Errorf("the retired sg1 and next sg1b must stay served")
		}
		// An RSA key of the customer is accepted too (another selector).
		e.cust.Add(t, `corp2._domainkey.own.example. 300 IN TXT "`+mustTXT(t, rsa)+`"`)
		if got, err := e.svc.SetBYOK(ctx, e.org, d.Name, "corp2", rsaPEM); err != nil || got.DKIMAlgorithm != "rsa-2048" {
			t.Fatalf("RSA BYOK: %s, %v", got.DKIMAlgorithm, err)
		}
		// A rotation returns to the delegated next key.
		if got, err := e.svc.Rotate(ctx, e.org, d.Name, ""); err != nil || got.DKIMSelector != "sg1b" {
			t.Fatalf("rotation from BYOK: %s, %v", got.DKIMSelector, err)
		}
	})
}

// TestTwoInstancesSwitchTogether: two instances on one PostgreSQL, each
// with its snapshot and zone. At every point, before and after each has
// seen a rotation, the key each signs with is served by both zones; the
// automatic steps, run by both at once, happen once.
func TestTwoInstancesSwitchTogether(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	ctx := context.Background()
	e := newRotEnv(t, storetest.OpenPostgres(t, dsn))
	st2 := storetest.OpenPostgres(t, dsn)
	z2, err := zone.New(zone.Config{Zone: rotZone, Nameservers: []string{"ns1." + rotZone}})
	if err != nil {
		t.Fatal(err)
	}
	eng2 := loader.NewEngine(st2, rotZone, z2, rotOpts, policy.Options{})
	if err := eng2.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	res, _ := domains.NewDNSResolver([]string{e.cust.Addr()}, 2*time.Second)
	svc2 := domains.NewService(st2, domains.ServiceOptions{Zone: rotZone, Resolver: res, Served: rotOpts, RetireAfter: 2 * time.Hour,
		PublishWait: 5 * time.Second, Now: e.clock.Now})
	d := e.addVerified(t, "two.example")
	if err := eng2.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	zones := map[string]*zone.Server{"instance 1": e.z, "instance 2": z2}
	engines := map[string]*policy.Engine{"instance 1": e.eng, "instance 2": eng2}
	// signsServed: the key each instance signs with is in both zones.
	signsServed := func(when string) {
		t.Helper()
		for en, eng := range engines {
			snap, err := eng.Current()
			if err != nil {
				t.Fatal(err)
			}
			dom, ok := snap.Domain(e.org.ID, d.Name)
			if !ok {
				t.Fatalf("%s: %s has no domain", when, en)
			}
			k, err := eng.Signer(ctx, dom)
			if err != nil {
				t.Fatalf("%s: %s cannot sign: %v", when, en, err)
			}
			txt := mustTXT(t, k)
			for zn, z := range zones {
				rrs := z.Records(domains.DKIMTarget(dom.Selector, d.Token, rotZone))
				if len(rrs) != 1 || !strings.Contains(strings.ReplaceAll(rrs[0].String(), "\" \"", ""), txt[len(txt)-30:]) {
					t.Errorf("%s: %s signs with %s, which %s serves as %v", when, en, dom.Selector, zn, rrs)
				}
			}
		}
	}
	signsServed("before the rotation")
	if _, err := svc2.Rotate(ctx, e.org, d.Name, ""); err != nil {
		t.Fatal(err)
	}
	e.refresh(t) // instance 1 has seen it, instance 2 not yet
	signsServed("instance 2 behind")
	if err := eng2.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	signsServed("both current")

	e.clock.Set(rotT0.Add(3 * time.Hour))
	due, err := st2.RemovalsDue(ctx, store.At(e.clock.Now()), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("RemovalsDue = %+v, %v", due, err)
	}
	errs := make(chan error, 2)
	go func() { errs <- e.svc.RemoveRetired(ctx, due[0]) }()
	go func() { errs <- svc2.RemoveRetired(ctx, due[0]) }()
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) || !(errors.Is(e1, store.ErrConflict) || errors.Is(e2, store.ErrConflict)) {
		t.Fatalf("removal by both instances: %v, %v; want one done, one ErrConflict", e1, e2)
	}
	ks, _ := st2.DKIMKeys(ctx, d.ID)
	next := 0
	for _, k := range ks {
		if k.State == store.KeyNext {
			next++
		}
	}
	if next != 1 {
		t.Errorf("%d next keys after removals by two instances, want 1", next)
	}
	e.refresh(t)
	if err := eng2.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	signsServed("after the removal")

	// The automatic rotation, due at both instances at once, happens once.
	rot, err := st2.RotationsDue(ctx, store.At(e.clock.Now()), 10)
	if err != nil || len(rot) != 1 {
		t.Fatalf("RotationsDue = %+v, %v", rot, err)
	}
	go func() { _, err := e.svc.RotateDue(ctx, rot[0]); errs <- err }()
	go func() { _, err := svc2.RotateDue(ctx, rot[0]); errs <- err }()
	e1, e2 = <-errs, <-errs
	if (e1 == nil) == (e2 == nil) || !(errors.Is(e1, store.ErrConflict) || errors.Is(e2, store.ErrConflict)) {
		t.Fatalf("automatic rotation by both instances: %v, %v; want one done, one ErrConflict", e1, e2)
	}
	e.refresh(t)
	if err := eng2.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	signsServed("after the automatic rotation")
	if got := kinds(t, st2, d); !strings.HasSuffix(got, "dkim.rotated,dkim.retired") || strings.Count(got, "dkim.rotated") != 2 {
		t.Errorf("events = %s, want two rotations", got)
	}
}
