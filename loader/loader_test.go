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
	"github.com/sendergate/sendergate/zone"
)

// fixture is a store with two organizations, their accounts and domains.
type fixture struct {
	st                *store.Store
	acme, other       store.Org
	app, billing, oth store.Account
}

var testKeyPEM = func() string {
	k, err := dkim.GenerateKey(dkim.Ed25519)
	if err != nil {
		panic(err)
	}
	p, err := dkim.MarshalPrivateKey(k)
	if err != nil {
		panic(err)
	}
	return p
}()

func addOrg(t testing.TB, st *store.Store, name string) store.Org {
	t.Helper()
	now := store.At(time.Now())
	o := store.Org{ID: store.NewID(), Name: name, SandboxDomain: name + ".sandbox.sg.localhost", CreatedAt: now}
	sb := store.Domain{ID: store.NewID(), OrgID: o.ID, Name: o.SandboxDomain, Sandbox: true, Token: store.NewID(), Status: "verified",
		DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: testKeyPEM, Records: "[]", CreatedAt: now, VerifiedAt: now}
	if err := st.CreateOrg(context.Background(), o, sb); err != nil {
		t.Fatal(err)
	}
	return o
}

func addAccount(t testing.TB, st *store.Store, org store.Org, name, pw string) store.Account {
	t.Helper()
	now := store.At(time.Now())
	a := store.Account{ID: store.NewID(), OrgID: org.ID, Name: name, Username: name + "@" + org.Name, PasswordHash: policy.HashPassword(pw), CreatedAt: now, UpdatedAt: now}
	if err := st.CreateAccount(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	return a
}

func addDomain(t testing.TB, st *store.Store, org store.Org, name, status, returnPath string) store.Domain {
	t.Helper()
	now := store.At(time.Now())
	d := store.Domain{ID: store.NewID(), OrgID: org.ID, Name: name, Token: store.NewID()[10:], Status: status, ReturnPath: returnPath,
		DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: testKeyPEM, Records: "[]", CreatedAt: now}
	if err := st.CreateDomain(context.Background(), d, store.Event{OrgID: org.ID, Subject: "domain:" + name, Kind: "domain.added", At: now}); err != nil {
		t.Fatal(err)
	}
	return d
}

func newFixture(t testing.TB, st *store.Store) *fixture {
	f := &fixture{st: st}
	f.acme = addOrg(t, st, "acme")
	f.other = addOrg(t, st, "other")
	f.app = addAccount(t, st, f.acme, "app", "app-password-0123456789")
	f.billing = addAccount(t, st, f.acme, "billing", "billing-password-0123456789")
	f.oth = addAccount(t, st, f.other, "app", "other-password-0123456789")
	addDomain(t, st, f.acme, "example.com", "verified", "mailing")
	addDomain(t, st, f.acme, "pending.example", "pending", "")
	addDomain(t, st, f.acme, "failing.example", "failing", "")
	addDomain(t, st, f.acme, "revoked.example", "revoked", "")
	addDomain(t, st, f.other, "other.example", "verified", "")
	r := addDomain(t, st, f.acme, "billing.example", "verified", "")
	if err := st.SetAccess(context.Background(), r.ID, true, []string{f.billing.ID}, store.Event{OrgID: f.acme.ID, Subject: "x", Kind: "x", At: store.At(time.Now())}); err != nil {
		t.Fatal(err)
	}
	return f
}

// loaded returns an engine on st with its first snapshot loaded.
func loaded(t testing.TB, st *store.Store, opts policy.Options) (*policy.Engine, *policy.Snapshot) {
	t.Helper()
	e := loader.NewEngine(st, "sg.localhost", nil, domains.ZoneOptions{}, opts)
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err := e.Current()
	if err != nil {
		t.Fatal(err)
	}
	return e, s
}

func TestDecide(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		newFixture(t, st)
		_, s := loaded(t, st, policy.Options{})
		app, _ := s.Account("app@acme")
		billing, _ := s.Account("billing@acme")
		tests := []struct {
			name      string
			acct      *policy.Account
			mailboxes []string
			allowed   bool
			reason    policy.Reason
			domain    string
		}{
			{name: "verified, unrestricted", acct: app, mailboxes: []string{"news@example.com"}, allowed: true, reason: policy.OK, domain: "example.com"},
			{name: "failing still sends", acct: app, mailboxes: []string{"a@failing.example"}, allowed: true, reason: policy.OK, domain: "failing.example"},
			{name: "pending", acct: app, mailboxes: []string{"a@pending.example"}, reason: policy.NotVerified, domain: "pending.example"},
			{name: "revoked", acct: app, mailboxes: []string{"a@revoked.example"}, reason: policy.Revoked, domain: "revoked.example"},
			{name: "unknown", acct: app, mailboxes: []string{"a@unknown.example"}, reason: policy.UnknownDomain, domain: "unknown.example"},
			{name: "other org's verified domain", acct: app, mailboxes: []string{"a@other.example"}, reason: policy.UnknownDomain, domain: "other.example"},
			{name: "subdomain is not its parent", acct: app, mailboxes: []string{"a@sub.example.com"}, reason: policy.UnknownDomain, domain: "sub.example.com"},
			{name: "restricted, not granted", acct: app, mailboxes: []string{"a@billing.example"}, reason: policy.NotGranted, domain: "billing.example"},
			{name: "restricted, granted", acct: billing, mailboxes: []string{"a@billing.example"}, allowed: true, reason: policy.OK, domain: "billing.example"},
			{name: "sandbox", acct: app, mailboxes: []string{"x@acme.sandbox.sg.localhost"}, allowed: true, reason: policy.OK, domain: "acme.sandbox.sg.localhost"},
			{name: "other org's sandbox", acct: app, mailboxes: []string{"x@other.sandbox.sg.localhost"}, reason: policy.UnknownDomain, domain: "other.sandbox.sg.localhost"},
			{name: "second mailbox refused", acct: app, mailboxes: []string{"a@example.com", "b@pending.example"}, reason: policy.NotVerified, domain: "pending.example"},
			{name: "signs as the first mailbox", acct: billing, mailboxes: []string{"a@billing.example", "b@example.com"}, allowed: true, reason: policy.OK, domain: "billing.example"},
			{name: "no domain", acct: app, mailboxes: []string{"nodomain"}, reason: policy.BadAddress},
			{name: "no mailbox", acct: app, reason: policy.BadAddress},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				d := s.Decide(tc.acct, tc.mailboxes...)
				if d.Allowed != tc.allowed || d.Reason != tc.reason || d.DomainName != tc.domain {
					t.Errorf("Decide = {allowed %v, reason %s, domain %q}, want {%v, %s, %q}", d.Allowed, d.Reason, d.DomainName, tc.allowed, tc.reason, tc.domain)
				}
				if !tc.allowed && tc.domain != "" && !strings.Contains(d.Message(), tc.domain) {
					t.Errorf("message %q does not name %s", d.Message(), tc.domain)
				}
			})
		}
		// The bounce domain: the return-path label, or T.bounce.ZONE.
		d := s.Decide(app, "a@example.com")
		if d.Domain.BounceDomain != "mailing.example.com" {
			t.Errorf("BounceDomain = %q", d.Domain.BounceDomain)
		}
		d = s.Decide(app, "a@failing.example")
		if !strings.HasSuffix(d.Domain.BounceDomain, ".bounce.sg.localhost") {
			t.Errorf("BounceDomain = %q", d.Domain.BounceDomain)
		}
	})
}

func TestAuthenticate(t *testing.T) {
	st := storetest.SQLite(t)
	newFixture(t, st)
	_, s := loaded(t, st, policy.Options{})
	if a, err := s.Authenticate("app@acme", "app-password-0123456789"); err != nil || a.Name != "app" || a.Org != "acme" {
		t.Errorf("good credentials: %+v %v", a, err)
	}
	for _, c := range [][2]string{{"app@acme", "wrong"}, {"app@acme", ""}, {"nobody@acme", "app-password-0123456789"}, {"app@other", "app-password-0123456789"}} {
		if _, err := s.Authenticate(c[0], c[1]); err != policy.ErrBadCredentials {
			t.Errorf("Authenticate(%q, %q) = %v, want policy.ErrBadCredentials", c[0], c[1], err)
		}
	}
}

func TestNotReadyFailsClosed(t *testing.T) {
	st := storetest.SQLite(t)
	e := loader.NewEngine(st, "sg.localhost", nil, domains.ZoneOptions{}, policy.Options{})
	if _, err := e.Current(); err != policy.ErrNotReady {
		t.Fatalf("Current before load = %v", err)
	}
}

func TestRequireConfirmed(t *testing.T) {
	st := storetest.SQLite(t)
	f := newFixture(t, st)
	now := store.At(time.Now())
	a := store.Address{ID: store.NewID(), OrgID: f.acme.ID, Email: "Contact@example.com", Domain: "example.com", Status: "pending", TokenHash: "h", CreatedAt: now}
	if err := st.CreateAddress(context.Background(), a, store.Event{OrgID: f.acme.ID, Subject: "x", Kind: "x", At: now}); err != nil {
		t.Fatal(err)
	}
	e := loader.NewEngine(st, "sg.localhost", nil, domains.ZoneOptions{}, policy.Options{RequireConfirmed: true})
	e.Reload(context.Background())
	s, _ := e.Current()
	app, _ := s.Account("app@acme")
	if d := s.Decide(app, "Contact@example.com"); d.Reason != policy.NotConfirmed || !strings.Contains(d.Message(), "Contact@example.com") {
		t.Errorf("pending address: %+v %q", d, d.Message())
	}
	c := a
	c.Status, c.ConfirmedAt = "confirmed", now
	if err := st.UpdateAddress(context.Background(), a, c, nil); err != nil {
		t.Fatal(err)
	}
	e.Reload(context.Background())
	s, _ = e.Current()
	for _, mb := range []string{"Contact@example.com", "contact@example.com"} {
		if d := s.Decide(app, mb); !d.Allowed {
			t.Errorf("confirmed %s refused: %s", mb, d.Message())
		}
	}
	if d := s.Decide(app, "other@example.com"); d.Reason != policy.NotConfirmed {
		t.Errorf("unconfirmed mailbox on a verified domain: %+v", d)
	}
	if d := s.Decide(app, "x@acme.sandbox.sg.localhost"); !d.Allowed {
		t.Errorf("sandbox is exempt from strict mode, got %+v", d)
	}
}

// TestSecondProcessSeesChange runs two engines on two connections to one
// PostgreSQL database, as two sendergate processes would: a grant revoked
// through one store handle is enforced by the other engine's Run loop.
func TestSecondProcessSeesChange(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	ctx := context.Background()
	a, b := storetest.OpenPostgres(t, dsn), storetest.OpenPostgres(t, dsn) // two processes' handles
	f := newFixture(t, a)
	e := loader.NewEngine(b, "sg.localhost", nil, domains.ZoneOptions{}, policy.Options{Poll: 100 * time.Millisecond})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go e.Run(rctx)
	waitFor := func(cond func(*policy.Snapshot) bool) bool {
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if s, err := e.Current(); err == nil && cond(s) {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	}
	allowed := func(s *policy.Snapshot) bool {
		acct, ok := s.Account("app@acme")
		return ok && s.Decide(acct, "a@example.com").Allowed
	}
	if !waitFor(allowed) {
		t.Fatal("second engine never allowed the verified domain")
	}
	d, _ := a.DomainByName(ctx, f.acme.ID, "example.com")
	if err := a.SetAccess(ctx, d.ID, true, nil, store.Event{OrgID: f.acme.ID, Subject: "x", Kind: "x", At: store.At(time.Now())}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(func(s *policy.Snapshot) bool { return !allowed(s) }) {
		t.Fatal("restriction made by process A not enforced by process B within 2s")
	}
}

func BenchmarkDecide(b *testing.B) {
	st := storetest.SQLite(b)
	newFixture(b, st)
	_, s := loaded(b, st, policy.Options{})
	acct, _ := s.Account("billing@acme")
	b.ReportAllocs()
	for b.Loop() {
		if d := s.Decide(acct, "news@billing.example"); !d.Allowed {
			b.Fatal(d.Message())
		}
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	st := storetest.SQLite(b)
	newFixture(b, st)
	_, s := loaded(b, st, policy.Options{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Authenticate("app@acme", "app-password-0123456789"); err != nil {
			b.Fatal(err)
		}
	}
}

// newZone is a real provider zone server (not listening: tests read it
// directly).
func newZone(t *testing.T) *zone.Server {
	t.Helper()
	z, err := zone.New(zone.Config{Zone: "sg.localhost", Nameservers: []string{"ns1.sg.localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	return z
}

var zopts = domains.ZoneOptions{Zone: "sg.localhost", BounceMX: "mx.sg.localhost", SPF: "v=spf1 -all"}

// TestZoneFollowsChanges: the zone is loaded whole at start with the zone
// version as serial, then patched per changed organization: a password
// rotation changes nothing in it (same serial), a new domain's DKIM TXT
// appears and a deleted organization's records go, each with a higher
// serial, and two instances on one database serve the same serial.
func TestZoneFollowsChanges(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		z := newZone(t)
		e := loader.NewEngine(st, "sg.localhost", z, zopts, policy.Options{})
		if err := e.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		first := z.Serial()
		if first < 2 {
			t.Fatalf("serial after the first load = %d, want the zone version", first)
		}
		if err := st.SetAccountPassword(ctx, f.acme.ID, "app", policy.HashPassword("new-password-0123456789"), store.At(time.Now())); err != nil {
			t.Fatal(err)
		}
		if err := e.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if z.Serial() != first {
			t.Errorf("a password rotation moved the serial from %d to %d", first, z.Serial())
		}
		s, _ := e.Current()
		if _, err := s.Authenticate("app@acme", "new-password-0123456789"); err != nil {
			t.Errorf("the rotated password is not in the snapshot: %v", err)
		}
		added := addDomain(t, st, f.other, "added.example", "pending", "")
		if err := e.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		dkimName := domains.DKIMTarget(added.DKIMSelector, added.Token, "sg.localhost")
		if rrs := z.Records(dkimName); len(rrs) != 1 || !strings.Contains(rrs[0].String(), "v=DKIM1") {
			t.Fatalf("new domain's DKIM TXT at %s: %v", dkimName, rrs)
		}
		afterAdd := z.Serial()
		if afterAdd <= first {
			t.Errorf("serial after a new domain = %d, want more than %d", afterAdd, first)
		}
		// A second instance starting now serves the same serial.
		z2 := newZone(t)
		if err := loader.NewEngine(st, "sg.localhost", z2, zopts, policy.Options{}).Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if z2.Serial() != afterAdd {
			t.Errorf("second instance serial %d, first instance %d", z2.Serial(), afterAdd)
		}
		if err := st.DeleteOrg(ctx, f.other.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if rrs := z.Records(dkimName); len(rrs) != 0 {
			t.Errorf("a deleted organization's DKIM TXT is still served: %v", rrs)
		}
		if rrs := z.Records(domains.BounceDomain(added.Token, "sg.localhost")); len(rrs) != 0 {
			t.Errorf("a deleted organization's bounce records are still served: %v", rrs)
		}
		acmeDomain, _ := st.DomainByName(ctx, f.acme.ID, "example.com")
		if rrs := z.Records(domains.BounceDomain(acmeDomain.Token, "sg.localhost")); len(rrs) != 2 {
			t.Errorf("another organization's bounce records changed: %v", rrs)
		}
		if z.Serial() <= afterAdd {
			t.Errorf("serial after deleting an organization = %d, want more than %d", z.Serial(), afterAdd)
		}
	})
}

// TestLoadStateReadsChangedOrgsOnly: after a change in one organization,
// the incremental read names only it; a deleted organization is named
// with no rows left.
func TestLoadStateReadsChangedOrgsOnly(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		full, err := st.LoadState(ctx, 0)
		if err != nil || !full.Full || len(full.OrgRows) != 2 {
			t.Fatalf("full load: %+v %v", full, err)
		}
		addAccount(t, st, f.other, "second", "second-password-0123456789")
		d, err := st.LoadState(ctx, full.Version)
		if err != nil {
			t.Fatal(err)
		}
		if d.Full || len(d.Orgs) != 1 || d.Orgs[0] != f.other.ID || len(d.Accounts) != 2 {
			t.Fatalf("incremental load: full=%v orgs=%v accounts=%d, want only %s with 2 accounts", d.Full, d.Orgs, len(d.Accounts), f.other.ID)
		}
		if err := st.DeleteOrg(ctx, f.other.ID); err != nil {
			t.Fatal(err)
		}
		d2, err := st.LoadState(ctx, d.Version)
		if err != nil {
			t.Fatal(err)
		}
		if len(d2.Orgs) != 1 || len(d2.OrgRows) != 0 || len(d2.Domains) != 0 {
			t.Errorf("after deleting %s: orgs %v, rows %d/%d", f.other.ID, d2.Orgs, len(d2.OrgRows), len(d2.Domains))
		}
		if same, _ := st.LoadState(ctx, d2.Version); len(same.Orgs) != 0 || same.Full {
			t.Errorf("no change: %+v", same)
		}
	})
}

// TestZonePatchesChangedDomainsOnly: a change of one domain of an
// organization (a next key published) reaches the zone, and the records of
// the organization's other domains stay served through it and through the
// removal of one of them.
func TestZonePatchesChangedDomainsOnly(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		two := addDomain(t, st, f.acme, "two.example", "verified", "")
		three := addDomain(t, st, f.acme, "three.example", "verified", "")
		z := newZone(t)
		e := loader.NewEngine(st, "sg.localhost", z, zopts, policy.Options{})
		if err := e.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		const nextTXT = "v=DKIM1; k=ed25519; p=bmV4dGtleW5leHRrZXluZXh0a2V5bmV4dGtleTA="
		if err := st.PublishNextKey(ctx, two, store.DKIMKey{ID: store.NewID(), Selector: "sg2", Algorithm: "ed25519",
			PrivateKey: testKeyPEM, TXT: nextTXT, CreatedAt: store.At(time.Now())}, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		served := func(name, want string) bool {
			for _, rr := range z.Records(name) {
				if strings.Contains(rr.String(), want) {
					return true
				}
			}
			return false
		}
		if name := domains.DKIMTarget("sg2", two.Token, "sg.localhost"); !served(name, nextTXT) {
			t.Errorf("the next key published for two.example is not served at %s: %v", name, z.Records(name))
		}
		for _, d := range []store.Domain{two, three} {
			if name := domains.DKIMTarget("sg1", d.Token, "sg.localhost"); !served(name, "v=DKIM1") {
				t.Errorf("%s's active key is no longer served at %s", d.Name, name)
			}
		}
		if err := st.DeleteDomain(ctx, f.acme.ID, "three.example", store.Event{OrgID: f.acme.ID, Subject: "domain:three.example", Kind: "domain.deleted", At: store.At(time.Now())}); err != nil {
			t.Fatal(err)
		}
		if err := e.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if rrs := z.Records(domains.DKIMTarget("sg1", three.Token, "sg.localhost")); len(rrs) != 0 {
			t.Errorf("a deleted domain's DKIM TXT is still served: %v", rrs)
		}
		if !served(domains.DKIMTarget("sg2", two.Token, "sg.localhost"), nextTXT) || !served(domains.DKIMTarget("sg1", two.Token, "sg.localhost"), "v=DKIM1") {
			t.Error("deleting three.example took two.example's keys out of the zone")
		}
	})
}
