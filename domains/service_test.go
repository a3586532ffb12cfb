package domains

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/internal/clocktest"
	"github.com/sendergate/sendergate/internal/dnstest"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

var svcT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	svcInterval = time.Hour
	svcGrace    = 3 * time.Hour
)

// svcEnv is a Service on a real store, verifying through a real DNS server
// (dnstest, the customer's resolver) whose records the test edits.
type svcEnv struct {
	st    *store.Store
	dns   *dnstest.Server
	clock *clocktest.Clock
	svc   *Service
}

func newSvcEnv(t *testing.T, st *store.Store) *svcEnv {
	t.Helper()
	e := &svcEnv{st: st, dns: dnstest.NewServer(t), clock: clocktest.New(svcT0)}
	e.svc = NewService(st, ServiceOptions{
		Zone: testZone, Resolver: newTestResolver(t, e.dns.Addr()), Interval: svcInterval, Grace: svcGrace,
		CheckTimeout: 5 * time.Second, Now: e.clock.Now,
	})
	return e
}

// newTestOrg stores an organization with its sandbox domain (Ed25519 key,
// verified from the start), as the admin API does.
func newTestOrg(t *testing.T, st *store.Store, name string) store.Org {
	t.Helper()
	key, err := dkim.GenerateKey(dkim.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := dkim.MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	now := store.At(svcT0)
	org := store.Org{ID: store.NewID(), Name: name, SandboxDomain: name + ".sandbox." + testZone, CreatedAt: now}
	sb := store.Domain{ID: store.NewID(), OrgID: org.ID, Name: org.SandboxDomain, Sandbox: true, Token: NewToken(),
		Status: string(Verified), DKIMSelector: DefaultSelector, DKIMAlgorithm: AlgorithmEd25519, DKIMKey: pem,
		Records: "[]", CreatedAt: now, VerifiedAt: now}
	if err := st.CreateOrg(context.Background(), org, sb); err != nil {
		t.Fatalf("create org %s: %v", name, err)
	}
	return org
}

func fullInput(name string) Input {
	return Input{Name: name, ReturnPath: "mailing", Tracking: "click", DKIMSelector: "mkt1",
		DMARC: &DMARC{Policy: "quarantine", RUA: "dmarc@" + name, Pct: 50}}
}

func recordsOf(t *testing.T, d store.Domain) []Record {
	t.Helper()
	var recs []Record
	if err := json.Unmarshal([]byte(d.Records), &recs); err != nil {
		t.Fatalf("records of %s: %v", d.Name, err)
	}
	return recs
}

func (e *svcEnv) domain(t *testing.T, org store.Org, name string) store.Domain {
	t.Helper()
	d, err := e.st.DomainByName(context.Background(), org.ID, name)
	if err != nil {
		t.Fatalf("domain %s: %v", name, err)
	}
	return d
}

// publish serves recs correctly except the purposes listed in omit.
func (e *svcEnv) publish(t *testing.T, recs []Record, omit ...Purpose) {
	t.Helper()
	var keep []Record
	for _, r := range recs {
		skip := false
		for _, p := range omit {
			skip = skip || r.Purpose == p
		}
		if !skip {
			keep = append(keep, r)
		}
	}
	e.dns.Reset(t, okRRs(keep), nil, nil)
}

func eventKinds(t *testing.T, st *store.Store, org store.Org, subject string) []string {
	t.Helper()
	evs, err := st.Events(context.Background(), org.ID, subject)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind)
	}
	return kinds
}

func wantKinds(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func wantStatus(t *testing.T, d store.Domain, want Status) {
	t.Helper()
	if d.Status != string(want) {
		t.Errorf("%s status = %s, want %s (history %q)", d.Name, d.Status, want, d.History)
	}
}

func TestServiceCreate(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newSvcEnv(t, st)
		org := newTestOrg(t, st, "acme")

		d, err := e.svc.Create(ctx, org, fullInput("News.Example.COM."))
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if d.Name != "news.example.com" || d.Status != string(Pending) || d.OrgID != org.ID {
			t.Errorf("created %q status %s org %s", d.Name, d.Status, d.OrgID)
		}
		if len(d.Token) < 10 || strings.ToLower(d.Token) != d.Token {
			t.Errorf("token %q: want lowercase, >= 10 chars", d.Token)
		}
		stored := e.domain(t, org, "news.example.com")
		if stored.Token != d.Token || stored.DMARCPolicy != "quarantine" || stored.DMARCPct != 50 || stored.DMARCRUA != "mailto:dmarc@news.example.com" {
			t.Errorf("stored %+v", stored)
		}
		recs := recordsOf(t, stored)
		want := Records(fullInput("news.example.com"), d.Token, testZone)
		if len(recs) != 5 {
			t.Fatalf("records = %+v, want 5 (two DKIM selectors)", recs)
		}
		for i := range want {
			if recs[i].Host != want[i].Host || recs[i].Value != want[i].Value || recs[i].Status != StatusUnchecked {
				t.Errorf("record %d = %+v, want %+v", i, recs[i], want[i])
			}
		}
		key, err := dkim.ParsePrivateKey(stored.DKIMKey)
		if err != nil {
			t.Fatalf("stored key does not parse: %v", err)
		}
		if txt, err := dkim.TXTValue(key.Public()); err != nil || !strings.HasPrefix(txt, "v=DKIM1; k=rsa; p=") {
			t.Errorf("stored key is not rsa: %q %v", txt, err)
		}
		// The private key appears nowhere but in its column.
		body := strings.Split(strings.TrimSpace(stored.DKIMKey), "\n")[1]
		evs, _ := st.Events(ctx, org.ID, "domain:news.example.com")
		evJSON, _ := json.Marshal(evs)
		for what, s := range map[string]string{"records": stored.Records, "events": string(evJSON)} {
			if strings.Contains(s, body) {
				t.Errorf("private key material in %s", what)
			}
		}
		wantKinds(t, eventKinds(t, st, org, "domain:news.example.com"), "domain.added", "dkim.next_published")

		ed, err := e.svc.Create(ctx, org, Input{Name: "ed.example.com", DKIMAlgorithm: "ed25519"})
		if err != nil {
			t.Fatalf("Create ed25519: %v", err)
		}
		if key, err := dkim.ParsePrivateKey(ed.DKIMKey); err != nil {
			t.Errorf("ed25519 key: %v", err)
		} else if txt, _ := dkim.TXTValue(key.Public()); !strings.HasPrefix(txt, "v=DKIM1; k=ed25519; p=") {
			t.Errorf("ed25519 key record %q", txt)
		}
		if ed.Token == d.Token {
			t.Error("two registrations share a token")
		}

		if _, err := e.svc.Create(ctx, org, Input{Name: "NEWS.example.com"}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("duplicate in org: err = %v, want ErrConflict", err)
		}
	})
}

func TestServiceCreateValidation(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newSvcEnv(t, st)
		org := newTestOrg(t, st, "acme")
		tests := []struct {
			name  string
			in    Input
			field string
		}{
			{name: "empty name", in: Input{}, field: "name"},
			{name: "one label", in: Input{Name: "localhost"}, field: "name"},
			{name: "ip literal", in: Input{Name: "192.0.2.1"}, field: "name"},
			{name: "inside the provider zone", in: Input{Name: "x." + testZone}, field: "name"},
			{name: "return path not a label", in: Input{Name: "a.example", ReturnPath: "a.b"}, field: "return_path"},
			{name: "tracking equals return path", in: Input{Name: "a.example", ReturnPath: "m", Tracking: "m"}, field: "tracking"},
			{name: "selector too short", in: Input{Name: "a.example", DKIMSelector: "ab"}, field: "dkim_selector"},
			{name: "selector too long", in: Input{Name: "a.example", DKIMSelector: "abcdefgh"}, field: "dkim_selector"},
			{name: "unknown algorithm", in: Input{Name: "a.example", DKIMAlgorithm: "rsa-1024"}, field: "dkim_algorithm"},
			{name: "unknown policy", in: Input{Name: "a.example", DMARC: &DMARC{Policy: "block"}}, field: "dmarc.policy"},
			{name: "pct 101", in: Input{Name: "a.example", DMARC: &DMARC{Policy: "reject", Pct: 101}}, field: "dmarc.pct"},
			{name: "pct with none", in: Input{Name: "a.example", DMARC: &DMARC{Policy: "none", Pct: 50}}, field: "dmarc.pct"},
			{name: "rua not an address", in: Input{Name: "a.example", DMARC: &DMARC{Policy: "none", RUA: "nobody"}}, field: "dmarc.rua"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := e.svc.Create(ctx, org, tt.in)
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("err = %v, want *FieldError", err)
				}
				if fe.Field != tt.field {
					t.Errorf("field = %q, want %q (%s)", fe.Field, tt.field, fe.Message)
				}
			})
		}
		ds, err := st.ListDomains(ctx, org.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || !ds[0].Sandbox {
			t.Errorf("refused input stored something: %d domains", len(ds))
		}
	})
}

func TestServiceVerify(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newSvcEnv(t, st)
		org := newTestOrg(t, st, "acme")
		created, err := e.svc.Create(ctx, org, fullInput("example.com"))
		if err != nil {
			t.Fatal(err)
		}
		want := recordsOf(t, created)

		d, err := e.svc.Verify(ctx, org, "example.com")
		if err != nil {
			t.Fatalf("Verify with nothing published: %v", err)
		}
		wantStatus(t, d, Pending)
		for _, r := range recordsOf(t, d) {
			if r.Status != StatusMissing || !strings.Contains(r.Reason, r.Value) {
				t.Errorf("%s: status %s, reason %q; want missing naming %s", r.Purpose, r.Status, r.Reason, r.Value)
			}
		}

		e.clock.Set(svcT0.Add(5 * time.Minute))
		e.publish(t, want)
		d, err = e.svc.Verify(ctx, org, "example.com")
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		wantStatus(t, d, Verified)
		got := recordsOf(t, e.domain(t, org, "example.com"))
		for i, r := range got {
			if r.Status != StatusOK || r.Host != want[i].Host || r.Value != want[i].Value {
				t.Errorf("record %d = %+v; want ok with the names of creation", i, r)
			}
		}
		stored := e.domain(t, org, "example.com")
		if !stored.VerifiedAt.Equal(e.clock.Now()) || !stored.LastCheckedAt.Equal(e.clock.Now()) {
			t.Errorf("verified_at %v, last_checked_at %v, want %v", stored.VerifiedAt, stored.LastCheckedAt, e.clock.Now())
		}
		kinds := eventKinds(t, st, org, "domain:example.com")
		wantKinds(t, kinds, "domain.added", "dkim.next_published", "domain.checked", "domain.checked", "domain.verified")

		// A manual verify of a verified domain is recorded too.
		if _, err := e.svc.Verify(ctx, org, "example.com"); err != nil {
			t.Fatal(err)
		}
		wantKinds(t, eventKinds(t, st, org, "domain:example.com"), append(kinds, "domain.checked")...)

		if _, err := e.svc.Verify(ctx, org, "nope.example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Verify unknown: %v, want ErrNotFound", err)
		}
		sb, err := e.svc.Verify(ctx, org, org.SandboxDomain)
		if err != nil || sb.Status != string(Verified) {
			t.Errorf("Verify sandbox: %s, %v; want verified without DNS", sb.Status, err)
		}
	})
}

func TestServiceLifecycle(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newSvcEnv(t, st)
		org := newTestOrg(t, st, "acme")
		d, err := e.svc.Create(ctx, org, fullInput("example.com"))
		if err != nil {
			t.Fatal(err)
		}
		recs := recordsOf(t, d)
		tv := svcT0.Add(2 * time.Minute) // verified by the background check
		steps := []struct {
			name    string
			at      time.Time
			omit    []Purpose // records not published
			checked int
			want    Status
		}{
			{name: "pending, not due yet", at: svcT0, omit: []Purpose{PurposeDKIM}, checked: 0, want: Pending},
			{name: "pending, checked, missing", at: svcT0.Add(time.Minute), omit: []Purpose{PurposeDKIM}, checked: 1, want: Pending},
			{name: "published: verified", at: tv, checked: 1, want: Verified},
			{name: "not due within the interval", at: tv.Add(30 * time.Minute), omit: []Purpose{PurposeDMARC}, checked: 0, want: Verified},
			{name: "first miss keeps verified", at: tv.Add(svcInterval), omit: []Purpose{PurposeDMARC}, checked: 1, want: Verified},
			{name: "second miss of three: failing", at: tv.Add(2 * svcInterval), omit: []Purpose{PurposeDMARC}, checked: 1, want: Failing},
			{name: "still within grace", at: tv.Add(3 * svcInterval), omit: []Purpose{PurposeDMARC}, checked: 1, want: Failing},
			{name: "grace over: revoked", at: tv.Add(svcInterval + svcGrace), omit: []Purpose{PurposeDMARC}, checked: 1, want: Revoked},
			{name: "published again: verified", at: tv.Add(svcInterval + svcGrace + svcInterval), checked: 1, want: Verified},
		}
		for _, s := range steps {
			e.clock.Set(s.at)
			e.publish(t, recs, s.omit...)
			n, err := e.svc.CheckDue(ctx)
			if err != nil {
				t.Fatalf("%s: CheckDue: %v", s.name, err)
			}
			if n != s.checked {
				t.Errorf("%s: checked %d domains, want %d", s.name, n, s.checked)
			}
			got := e.domain(t, org, "example.com")
			if got.Status != string(s.want) {
				t.Fatalf("%s: status %s (history %q), want %s", s.name, got.Status, got.History, s.want)
			}
		}
		got := e.domain(t, org, "example.com")
		if !got.VerifiedAt.Equal(e.clock.Now()) || !got.FirstMissAt.IsZero() {
			t.Errorf("after re-verification: verified_at %v first_miss_at %v", got.VerifiedAt, got.FirstMissAt)
		}
		wantKinds(t, eventKinds(t, st, org, "domain:example.com"),
			"domain.added", "dkim.next_published", "domain.verified", "domain.failing", "domain.revoked", "domain.verified")
		evs, _ := st.Events(ctx, org.ID, "domain:example.com")
		if len(evs) == 5 {
			if d := evs[2].Detail; !strings.Contains(d, "verified -> failing") || !strings.Contains(d, "_dmarc.example.com missing") {
				t.Errorf("failing event detail %q: want the transition and the missing record", d)
			}
		}
	})
}

func TestServiceServfailNeverDemotes(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newSvcEnv(t, st)
		org := newTestOrg(t, st, "acme")
		d, err := e.svc.Create(ctx, org, fullInput("example.com"))
		if err != nil {
			t.Fatal(err)
		}
		recs := recordsOf(t, d)
		var hosts []string
		for _, r := range recs {
			hosts = append(hosts, r.Host)
		}
		e.publish(t, recs)
		if d, err = e.svc.Verify(ctx, org, "example.com"); err != nil || d.Status != string(Verified) {
			t.Fatalf("Verify: %s %v", d.Status, err)
		}

		// The customer's server answers SERVFAIL for every record, for
		// longer than grace: no miss is counted, nothing changes.
		e.dns.Reset(t, okRRs(recs), hosts, nil)
		for i := 1; i <= 5; i++ {
			e.clock.Set(svcT0.Add(time.Duration(i) * svcInterval))
			if n, err := e.svc.CheckDue(ctx); err != nil || n != 1 {
				t.Fatalf("CheckDue %d: %d, %v", i, n, err)
			}
		}
		got := e.domain(t, org, "example.com")
		wantStatus(t, got, Verified)
		if got.History != "o" || !got.FirstMissAt.IsZero() {
			t.Errorf("history %q first_miss_at %v: a SERVFAIL counted as a miss", got.History, got.FirstMissAt)
		}
		for _, r := range recordsOf(t, got) {
			if r.Status != StatusError || !strings.Contains(r.Reason, "not counted") {
				t.Errorf("%s: status %s reason %q, want error not counted", r.Purpose, r.Status, r.Reason)
			}
		}
		if got, err := e.svc.Verify(ctx, org, "example.com"); err != nil || got.Status != string(Verified) {
			t.Errorf("manual verify during SERVFAIL: %s, %v", got.Status, err)
		}

		// A failing domain is not revoked by SERVFAIL after its grace.
		e.publish(t, recs, PurposeDMARC)
		for i := 6; i <= 7; i++ {
			e.clock.Set(svcT0.Add(time.Duration(i) * svcInterval))
			if _, err := e.svc.CheckDue(ctx); err != nil {
				t.Fatal(err)
			}
		}
		wantStatus(t, e.domain(t, org, "example.com"), Failing)
		e.dns.Reset(t, okRRs(recs), hosts, nil)
		e.clock.Set(svcT0.Add(6*svcInterval + svcGrace + time.Minute))
		if _, err := e.svc.CheckDue(ctx); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, e.domain(t, org, "example.com"), Failing)
		wantKinds(t, eventKinds(t, st, org, "domain:example.com"),
			"domain.added", "dkim.next_published", "domain.checked", "domain.verified", "domain.checked", "domain.failing")
	})
}

func TestServiceTwoOrgs(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newSvcEnv(t, st)
		orgA, orgB, orgC := newTestOrg(t, st, "alpha"), newTestOrg(t, st, "bravo"), newTestOrg(t, st, "charlie")
		in := Input{Name: "shared.example", DMARC: &DMARC{Policy: "none"}}
		a, err := e.svc.Create(ctx, orgA, in)
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.svc.Create(ctx, orgB, in)
		if err != nil {
			t.Fatalf("same name in another organization, not yet verified: %v", err)
		}
		if a.Token == b.Token {
			t.Fatal("two organizations got the same token")
		}
		recsA, recsB := recordsOf(t, a), recordsOf(t, b)
		e.publish(t, recsA)

		got, err := e.svc.Verify(ctx, orgB, "shared.example")
		if err != nil {
			t.Fatalf("Verify B: %v", err)
		}
		wantStatus(t, got, Pending)
		for i, r := range recordsOf(t, got) {
			if r.Status != StatusMismatch || r.Found != recsA[i].Value {
				t.Errorf("B's %s: %s found %q, want mismatch finding A's %s", r.Purpose, r.Status, r.Found, recsA[i].Value)
			}
		}
		if got, err = e.svc.Verify(ctx, orgA, "shared.example"); err != nil || got.Status != string(Verified) {
			t.Fatalf("Verify A: %s %v", got.Status, err)
		}
		if _, err := e.svc.Create(ctx, orgC, in); !errors.Is(err, store.ErrConflict) {
			t.Errorf("Create of a name verified elsewhere: %v, want ErrConflict", err)
		}

		// B publishes its own records while A is verified: refused.
		e.publish(t, recsB)
		_, err = e.svc.Verify(ctx, orgB, "shared.example")
		var se *StateError
		if !errors.As(err, &se) || se.Code != "conflict" {
			t.Fatalf("Verify B while A is verified: %v, want *StateError conflict", err)
		}
		wantStatus(t, e.domain(t, orgB, "shared.example"), Pending)
		wantStatus(t, e.domain(t, orgA, "shared.example"), Verified)
		// The refused verify is still a manual check: an event, and the time
		// of the last check, so the background checker does not redo it on
		// every round.
		wantKinds(t, eventKinds(t, st, orgB, "domain:shared.example"), "domain.added", "dkim.next_published", "domain.checked", "domain.checked")
		e.clock.Set(svcT0.Add(time.Minute))
		if n, err := e.svc.CheckDue(ctx); err != nil || n != 1 {
			t.Errorf("CheckDue: %d, %v; want B checked", n, err)
		}
		if n, err := e.svc.CheckDue(ctx); err != nil || n != 0 {
			t.Errorf("CheckDue again at the same instant: %d domains, %v; want 0 (B was just checked)", n, err)
		}
		wantStatus(t, e.domain(t, orgB, "shared.example"), Pending)

		// Another organization cannot touch A's domain by name.
		if _, err := e.svc.SetAccess(ctx, orgC, "shared.example", false, nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetAccess from another org: %v, want ErrNotFound", err)
		}
		if err := e.svc.Delete(ctx, orgC, "shared.example"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Delete from another org: %v, want ErrNotFound", err)
		}
		wantStatus(t, e.domain(t, orgA, "shared.example"), Verified)
	})
}

func TestServiceAccessAndDelete(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newSvcEnv(t, st)
		org := newTestOrg(t, st, "acme")
		for _, name := range []string{"billing", "crm"} {
			acct := store.Account{ID: store.NewID(), OrgID: org.ID, Name: name, Username: "acme-" + name, PasswordHash: "x",
				CreatedAt: store.At(svcT0), UpdatedAt: store.At(svcT0)}
			if err := st.CreateAccount(ctx, acct); err != nil {
				t.Fatal(err)
			}
		}
		d, err := e.svc.Create(ctx, org, Input{Name: "example.com"})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name       string
			restricted bool
			accounts   []string
			field      string
		}{
			{name: "unknown account", restricted: true, accounts: []string{"nope"}, field: "accounts[0]"},
			{name: "second unknown", restricted: true, accounts: []string{"billing", "nope"}, field: "accounts[1]"},
			{name: "accounts without restriction", restricted: false, accounts: []string{"billing"}, field: "accounts"},
		}
		for _, tt := range tests {
			_, err := e.svc.SetAccess(ctx, org, "example.com", tt.restricted, tt.accounts)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("%s: err = %v, want *FieldError %s", tt.name, err, tt.field)
			}
		}
		if g, _ := st.DomainGrants(ctx, d.ID); len(g) != 0 || e.domain(t, org, "example.com").Restricted {
			t.Errorf("refused SetAccess changed the grants: %v", g)
		}

		if _, err := e.svc.SetAccess(ctx, org, "example.com", true, []string{"crm", "billing", "crm"}); err != nil {
			t.Fatalf("SetAccess: %v", err)
		}
		grants, _ := st.DomainGrants(ctx, d.ID)
		if strings.Join(grants, ",") != "billing,crm" || !e.domain(t, org, "example.com").Restricted {
			t.Errorf("grants = %v, restricted %v", grants, e.domain(t, org, "example.com").Restricted)
		}

		if err := e.svc.Delete(ctx, org, "example.com"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := st.DomainByName(ctx, org.ID, "example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after Delete: %v, want ErrNotFound", err)
		}
		all, _ := st.AllGrants(ctx)
		for _, g := range all {
			if g.DomainID == d.ID {
				t.Errorf("grant %+v survived Delete", g)
			}
		}
		wantKinds(t, eventKinds(t, st, org, "domain:example.com"), "domain.added", "dkim.next_published", "domain.access", "domain.deleted")
		if err := e.svc.Delete(ctx, org, "example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second Delete: %v, want ErrNotFound", err)
		}

		// The sandbox domain exists and is shown, so refusing its deletion
		// is a state refusal (422), not "not found" (404).
		err = e.svc.Delete(ctx, org, org.SandboxDomain)
		var se *StateError
		if !errors.As(err, &se) {
			t.Errorf("Delete sandbox: %v, want *StateError", err)
		}
		wantStatus(t, e.domain(t, org, org.SandboxDomain), Verified)
		// Every account may use the sandbox: it cannot be restricted.
		_, err = e.svc.SetAccess(ctx, org, org.SandboxDomain, true, nil)
		if !errors.As(err, &se) || se.Code != "sandbox_domain" {
			t.Errorf("SetAccess on the sandbox: %v, want a sandbox_domain state error", err)
		}
		if e.domain(t, org, org.SandboxDomain).Restricted {
			t.Error("sandbox domain became restricted")
		}
	})
}

// TestServiceRun: the loop checks what is due and then reports the change.
func TestServiceRun(t *testing.T) {
	st := storetest.SQLite(t)
	e := newSvcEnv(t, st)
	org := newTestOrg(t, st, "acme")
	d, err := e.svc.Create(context.Background(), org, Input{Name: "example.com"})
	if err != nil {
		t.Fatal(err)
	}
	e.publish(t, recordsOf(t, d))
	e.clock.Set(svcT0.Add(time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.svc.Run(ctx, time.Millisecond, func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	}()
	<-changed
	cancel()
	<-done
	wantStatus(t, e.domain(t, org, "example.com"), Verified)
}
