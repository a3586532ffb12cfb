package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
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
	a := store.Account{ID: store.NewID(), OrgID: org.ID, Name: name, Username: name + "@" + org.Name, PasswordHash: HashPassword(pw), CreatedAt: now, UpdatedAt: now}
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
func loaded(t testing.TB, st *store.Store, opts Options) (*Engine, *Snapshot) {
	t.Helper()
	e := NewEngine(st, opts)
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
		_, s := loaded(t, st, Options{Zone: "sg.localhost"})
		app, _ := s.Account("app@acme")
		billing, _ := s.Account("billing@acme")
		tests := []struct {
			name      string
			acct      *Account
			mailboxes []string
			allowed   bool
			reason    Reason
			domain    string
		}{
			{name: "verified, unrestricted", acct: app, mailboxes: []string{"news@example.com"}, allowed: true, reason: OK, domain: "example.com"},
			{name: "failing still sends", acct: app, mailboxes: []string{"a@failing.example"}, allowed: true, reason: OK, domain: "failing.example"},
			{name: "pending", acct: app, mailboxes: []string{"a@pending.example"}, reason: NotVerified, domain: "pending.example"},
			{name: "revoked", acct: app, mailboxes: []string{"a@revoked.example"}, reason: Revoked, domain: "revoked.example"},
			{name: "unknown", acct: app, mailboxes: []string{"a@unknown.example"}, reason: UnknownDomain, domain: "unknown.example"},
			{name: "other org's verified domain", acct: app, mailboxes: []string{"a@other.example"}, reason: UnknownDomain, domain: "other.example"},
			{name: "subdomain is not its parent", acct: app, mailboxes: []string{"a@sub.example.com"}, reason: UnknownDomain, domain: "sub.example.com"},
			{name: "restricted, not granted", acct: app, mailboxes: []string{"a@billing.example"}, reason: NotGranted, domain: "billing.example"},
			{name: "restricted, granted", acct: billing, mailboxes: []string{"a@billing.example"}, allowed: true, reason: OK, domain: "billing.example"},
			{name: "sandbox", acct: app, mailboxes: []string{"x@acme.sandbox.sg.localhost"}, allowed: true, reason: OK, domain: "acme.sandbox.sg.localhost"},
			{name: "other org's sandbox", acct: app, mailboxes: []string{"x@other.sandbox.sg.localhost"}, reason: UnknownDomain, domain: "other.sandbox.sg.localhost"},
			{name: "second mailbox refused", acct: app, mailboxes: []string{"a@example.com", "b@pending.example"}, reason: NotVerified, domain: "pending.example"},
			{name: "signs as the first mailbox", acct: billing, mailboxes: []string{"a@billing.example", "b@example.com"}, allowed: true, reason: OK, domain: "billing.example"},
			{name: "no domain", acct: app, mailboxes: []string{"nodomain"}, reason: BadAddress},
			{name: "no mailbox", acct: app, reason: BadAddress},
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
	_, s := loaded(t, st, Options{Zone: "sg.localhost"})
	if a, err := s.Authenticate("app@acme", "app-password-0123456789"); err != nil || a.Name != "app" || a.Org != "acme" {
		t.Errorf("good credentials: %+v %v", a, err)
	}
	for _, c := range [][2]string{{"app@acme", "wrong"}, {"app@acme", ""}, {"nobody@acme", "app-password-0123456789"}, {"app@other", "app-password-0123456789"}} {
		if _, err := s.Authenticate(c[0], c[1]); err != ErrBadCredentials {
			t.Errorf("Authenticate(%q, %q) = %v, want ErrBadCredentials", c[0], c[1], err)
		}
	}
}

func TestNotReadyFailsClosed(t *testing.T) {
	st := storetest.SQLite(t)
	e := NewEngine(st, Options{})
	if _, err := e.Current(); err != ErrNotReady {
		t.Fatalf("Current before load = %v", err)
	}
	if _, err := e.Lookup("app@acme"); err != ErrNotReady {
		t.Errorf("Lookup before load = %v, want ErrNotReady", err)
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
	e := NewEngine(st, Options{Zone: "sg.localhost", RequireConfirmed: true})
	e.Reload(context.Background())
	s, _ := e.Current()
	app, _ := s.Account("app@acme")
	if d := s.Decide(app, "Contact@example.com"); d.Reason != NotConfirmed || !strings.Contains(d.Message(), "Contact@example.com") {
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
	if d := s.Decide(app, "other@example.com"); d.Reason != NotConfirmed {
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
	a, err := store.Open(ctx, "postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := store.Open(ctx, "postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	f := newFixture(t, a)
	e := NewEngine(b, Options{Zone: "sg.localhost", Poll: 100 * time.Millisecond})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go e.Run(rctx)
	waitFor := func(cond func(*Snapshot) bool) bool {
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if s, err := e.Current(); err == nil && cond(s) {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	}
	allowed := func(s *Snapshot) bool {
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
	if !waitFor(func(s *Snapshot) bool { return !allowed(s) }) {
		t.Fatal("restriction made by process A not enforced by process B within 2s")
	}
}

func BenchmarkDecide(b *testing.B) {
	st := storetest.SQLite(b)
	newFixture(b, st)
	_, s := loaded(b, st, Options{Zone: "sg.localhost"})
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
	_, s := loaded(b, st, Options{Zone: "sg.localhost"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Authenticate("app@acme", "app-password-0123456789"); err != nil {
			b.Fatal(err)
		}
	}
}
