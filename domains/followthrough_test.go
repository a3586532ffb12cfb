package domains

import (
	"context"
	"crypto"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/internal/dnstest"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/zone"
)

const (
	ftBounceMX = "mx." + testZone
	ftSPF      = "v=spf1 ip4:192.0.2.25 -all"
	ftTrack    = "192.0.2.10"
	ftDMARC    = "v=DMARC1; p=quarantine; pct=50; rua=mailto:dmarc@example.com"
)

// ftEnv is one registration of example.com with every record, and a
// dnstest server that plays the recursive resolver: it serves the
// customer's records and the provider zone's records as ZoneRecords builds
// them (an RSA-2048 key, so the DKIM TXT is split into two strings).
type ftEnv struct {
	z        *dnstest.Server
	res      *DNSResolver
	recs     []Record // Want filled by ExpectServed
	customer []string // the right CNAMEs
	served   []string // the provider zone's records
	dkimTXT  string   // the DKIM TXT value served at the DKIM target
	otherTXT string   // another key's DKIM TXT value
}

func ftInput() Input {
	return Input{Name: "example.com", ReturnPath: "mailing", Tracking: "click", DKIMSelector: "mkt1",
		DMARC: &DMARC{Policy: "quarantine", RUA: "mailto:dmarc@example.com", Pct: 50}}
}

func ftDomain() store.Domain {
	return store.Domain{ID: "d1", Name: "example.com", Token: checkToken, ReturnPath: "mailing", Tracking: "click",
		DKIMSelector: "mkt1", DMARCPolicy: "quarantine", DMARCRUA: "mailto:dmarc@example.com", DMARCPct: 50}
}

func newFTEnv(t *testing.T) *ftEnv {
	t.Helper()
	key, err := dkim.GenerateKey(dkim.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := dkim.GenerateKey(dkim.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	e := &ftEnv{z: dnstest.NewServer(t)}
	e.res = newTestResolver(t, e.z.Addr())
	if e.dkimTXT, err = dkim.TXTValue(key.Public()); err != nil {
		t.Fatal(err)
	}
	if e.otherTXT, err = dkim.TXTValue(other.Public()); err != nil {
		t.Fatal(err)
	}
	if len(e.dkimTXT) <= 255 {
		t.Fatalf("DKIM TXT of %d bytes: the test needs one split into several strings", len(e.dkimTXT))
	}
	rrs := ZoneRecords([]store.Domain{ftDomain()}, func(string) crypto.PublicKey { return key.Public() },
		ZoneOptions{Zone: testZone, BounceMX: ftBounceMX, SPF: ftSPF, TrackingAddress: ftTrack})
	for _, rr := range rrs {
		e.served = append(e.served, rr.String())
	}
	e.recs = ExpectServed(ftRecords(), rrs)
	e.customer = okRRs(e.recs)
	return e
}

// ftRecords are the registration's records with one DKIM record: these
// tests follow the active key's CNAME (the second selector, which holds
// the next key, is followed in keys_test.go).
func ftRecords() []Record {
	recs := Records(ftInput(), checkToken, testZone)
	return slices.Delete(recs, 1, 2)
}

// host returns the customer host of a purpose.
func (e *ftEnv) host(p Purpose) string {
	for _, r := range e.recs {
		if r.Purpose == p {
			return r.Host
		}
	}
	panic("no record for " + string(p))
}

// without returns rrs minus those owned by name with a type in types (all
// types when none are given).
func without(rrs []string, name string, types ...string) []string {
	var out []string
	for _, s := range rrs {
		f := strings.Fields(s)
		if canonical(f[0]) == canonical(name) && (len(types) == 0 || slices.Contains(types, f[3])) {
			continue
		}
		out = append(out, s)
	}
	return out
}

func TestCheckFollowsTheCNAME(t *testing.T) {
	e := newFTEnv(t)
	dkimTarget := DKIMTarget("mkt1", checkToken, testZone)
	bounce := BounceDomain(checkToken, testZone)
	all := slices.Concat(e.customer, e.served)
	// flattened publishes data at host in place of its CNAME.
	flattened := func(p Purpose, rrs ...string) []string {
		return slices.Concat(without(e.customer, e.host(p)), e.served, rrs)
	}
	tests := []struct {
		name        string
		rrs         []string
		servfail    []string
		purpose     Purpose // the record inspected
		wantStatus  string
		wantFound   string // exact; "*" skips the comparison
		wantReason  []string
		wantNote    []string // substrings; none means Note must be empty
		wantOutcome Outcome
	}{
		{name: "everything right", rrs: all, purpose: PurposeDKIM, wantStatus: StatusOK, wantFound: dkimTarget, wantOutcome: AllOK},
		{name: "provider zone answers NXDOMAIN", rrs: e.customer, purpose: PurposeDKIM, wantStatus: StatusMismatch,
			wantFound:   dkimTarget + " -> NXDOMAIN",
			wantReason:  []string{"CNAME at mkt1._domainkey.example.com is right", dkimTarget, "(NXDOMAIN)", "no DKIM key", "check that " + testZone + " is delegated to sendergate's name servers"},
			wantOutcome: Missed},
		{name: "bounce target missing", rrs: slices.Concat(e.customer, without(e.served, bounce)), purpose: PurposeReturnPath,
			wantStatus: StatusMismatch, wantFound: bounce + " -> NXDOMAIN",
			wantReason: []string{"mailing.example.com is right", "bounce MX record", "delegated"}, wantOutcome: Missed},
		{name: "SPF missing at the bounce target", rrs: slices.Concat(e.customer, without(e.served, bounce, "TXT")), purpose: PurposeReturnPath,
			wantStatus: StatusMismatch, wantFound: bounce + " -> no TXT record",
			wantReason: []string{"serves no TXT record at " + bounce, "no SPF record", "propagating", "delegated"}, wantOutcome: Missed},
		{name: "stale DKIM key at the target", rrs: slices.Concat(without(all, dkimTarget), []string{zone.TXT(dkimTarget, 300, e.otherTXT).String()}),
			purpose: PurposeDKIM, wantStatus: StatusMismatch, wantFound: dkimTarget + ` -> TXT "` + e.otherTXT + `"`,
			wantReason: []string{"is right", "a different DKIM key at " + dkimTarget, "propagating or the zone is stale"}, wantOutcome: Missed},
		{name: "another DMARC policy at the target", rrs: slices.Concat(without(all, DMARCTarget(checkToken, testZone)), []string{DMARCTarget(checkToken, testZone) + `. 300 IN TXT "v=DMARC1; p=none"`}),
			purpose: PurposeDMARC, wantStatus: StatusMismatch, wantFound: "*",
			wantReason: []string{"a different DMARC record", `sendergate serves TXT "` + ftDMARC + `"`}, wantOutcome: Missed},
		{name: "SERVFAIL at the target is an error, not a miss", rrs: all, servfail: []string{dkimTarget}, purpose: PurposeDKIM,
			wantStatus: StatusError, wantFound: dkimTarget,
			wantReason:  []string{"CNAME at mkt1._domainkey.example.com is right", "SERVFAIL", "not counted as a missing record", "retried"},
			wantOutcome: Transient},
		{name: "flattened DKIM", rrs: flattened(PurposeDKIM, zone.TXT("mkt1._domainkey.example.com", 300, e.dkimTXT).String()),
			purpose: PurposeDKIM, wantStatus: StatusOK, wantFound: `TXT "` + e.dkimTXT + `"`,
			wantReason:  []string{"flattened by your DNS provider"},
			wantNote:    []string{"mkt1._domainkey.example.com is flattened by your DNS provider", "instead of a CNAME", "verifies now", "key rotation", "Turn off CNAME flattening / proxying for mkt1._domainkey.example.com"},
			wantOutcome: AllOK},
		{name: "flattened but another key", rrs: flattened(PurposeDKIM, zone.TXT("mkt1._domainkey.example.com", 300, e.otherTXT).String()),
			purpose: PurposeDKIM, wantStatus: StatusMismatch, wantFound: `TXT "` + e.otherTXT + `"`,
			wantReason: []string{"has a TXT record", "Delete the TXT record", dkimTarget, "not a flattened copy"}, wantOutcome: Missed},
		{name: "flattened return path", rrs: flattened(PurposeReturnPath, "mailing.example.com. 300 IN MX 10 "+strings.ToUpper(ftBounceMX)+".", `mailing.example.com. 300 IN TXT "`+ftSPF+`"`),
			purpose: PurposeReturnPath, wantStatus: StatusOK, wantFound: "MX 10 " + ftBounceMX + `, TXT "` + ftSPF + `"`,
			wantNote: []string{"flattened", "bounce MX or SPF"}, wantOutcome: AllOK},
		{name: "flattened return path without its SPF record", rrs: flattened(PurposeReturnPath, "mailing.example.com. 300 IN MX 10 "+ftBounceMX+"."),
			purpose: PurposeReturnPath, wantStatus: StatusMismatch, wantFound: "MX 10 " + ftBounceMX,
			wantReason: []string{"but no CNAME", "not a flattened copy"}, wantOutcome: Missed},
		{name: "flattened tracking", rrs: flattened(PurposeTracking, "click.example.com. 300 IN A "+ftTrack),
			purpose: PurposeTracking, wantStatus: StatusOK, wantFound: "A " + ftTrack,
			wantNote: []string{"click.example.com is flattened", "tracking address"}, wantOutcome: AllOK},
		{name: "proxied tracking", rrs: flattened(PurposeTracking, "click.example.com. 300 IN A 198.51.100.7"),
			purpose: PurposeTracking, wantStatus: StatusMismatch, wantFound: "A 198.51.100.7",
			wantReason: []string{"proxying the record or flattening the CNAME", "not a flattened copy"}, wantOutcome: Missed},
		{name: "flattened DMARC", rrs: flattened(PurposeDMARC, `_dmarc.example.com. 300 IN TXT "`+ftDMARC+`"`),
			purpose: PurposeDMARC, wantStatus: StatusOK, wantFound: `TXT "` + ftDMARC + `"`,
			wantNote: []string{"DMARC policy"}, wantOutcome: AllOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.z.Reset(t, tt.rrs, tt.servfail, nil)
			recs := Check(context.Background(), e.res, e.recs)
			got := recordFor(t, recs, tt.purpose)
			t.Logf("found %q\nreason: %s", got.Found, got.Reason)
			if got.Status != tt.wantStatus || (tt.wantFound != "*" && got.Found != tt.wantFound) {
				t.Fatalf("status %q found %q, want %q %q (reason %q)", got.Status, got.Found, tt.wantStatus, tt.wantFound, got.Reason)
			}
			if tt.wantStatus == StatusOK && len(tt.wantNote) == 0 && got.Reason != "" {
				t.Errorf("ok record with reason %q", got.Reason)
			}
			for _, s := range tt.wantReason {
				if !strings.Contains(strings.ToLower(got.Reason), strings.ToLower(s)) {
					t.Errorf("reason %q does not mention %q", got.Reason, s)
				}
			}
			if len(tt.wantNote) == 0 && got.Note != "" {
				t.Errorf("note %q, want none", got.Note)
			}
			for _, s := range tt.wantNote {
				if !strings.Contains(strings.ToLower(got.Note), strings.ToLower(s)) {
					t.Errorf("note %q does not mention %q", got.Note, s)
				}
			}
			if o := OutcomeOf(recs); o != tt.wantOutcome {
				t.Errorf("OutcomeOf = %v, want %v (records %+v)", o, tt.wantOutcome, recs)
			}
		})
	}
}

// TestBrokenDelegationKeepsDomainPending: right CNAMEs into a provider
// zone that does not answer do not verify a pending domain, and count as a
// miss for a verified one.
func TestBrokenDelegationKeepsDomainPending(t *testing.T) {
	e := newFTEnv(t)
	e.z.Reset(t, e.customer, nil, nil)
	recs := Check(context.Background(), e.res, e.recs)
	for _, r := range recs {
		if r.Status != StatusMismatch || !strings.Contains(r.Reason, "delegated to sendergate's name servers") {
			t.Errorf("%s: status %q reason %q, want a mismatch naming the delegation", r.Host, r.Status, r.Reason)
		}
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	if st := Next(State{Status: Pending, CreatedAt: now}, OutcomeOf(recs), now, time.Hour, true); st.Status != Pending || st.VerifiedAt != nil {
		t.Errorf("pending domain became %s (verified at %v)", st.Status, st.VerifiedAt)
	}
	verified := State{Status: Verified, VerifiedAt: &now, History: "ox", CreatedAt: now}
	if st := Next(verified, OutcomeOf(recs), now, time.Hour, false); st.Status != Failing {
		t.Errorf("verified domain with a second miss became %s, want failing", st.Status)
	}
}

// TestCheckWithoutWantStopsAtCNAME: records without Want (callers not
// wired to the provider zone yet) are checked as before: a right CNAME is ok
// whatever its target serves.
func TestCheckWithoutWantStopsAtCNAME(t *testing.T) {
	e := newFTEnv(t)
	e.z.Reset(t, e.customer, nil, nil)
	recs := ftRecords()
	for _, r := range Check(context.Background(), e.res, recs) {
		if r.Status != StatusOK || r.Reason != "" || r.Note != "" {
			t.Errorf("%s: status %q reason %q note %q, want ok", r.Host, r.Status, r.Reason, r.Note)
		}
	}
}

func TestExpectServed(t *testing.T) {
	key, err := dkim.GenerateKey(dkim.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	txt, err := dkim.TXTValue(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub := func(string) crypto.PublicKey { return key.Public() }
	recs := ftRecords()
	tests := []struct {
		name  string
		track string
		want  map[Purpose][]Served
	}{
		{name: "with a tracking address", track: ftTrack, want: map[Purpose][]Served{
			PurposeDKIM:       {{Type: "TXT", Value: txt}},
			PurposeReturnPath: {{Type: "MX", Value: "10 " + ftBounceMX}, {Type: "TXT", Value: ftSPF}},
			PurposeTracking:   {{Type: "A", Value: ftTrack}},
			PurposeDMARC:      {{Type: "TXT", Value: ftDMARC}},
		}},
		{name: "tracking without an address is checked up to its CNAME", want: map[Purpose][]Served{
			PurposeDKIM:       {{Type: "TXT", Value: txt}},
			PurposeReturnPath: {{Type: "MX", Value: "10 " + ftBounceMX}, {Type: "TXT", Value: ftSPF}},
			PurposeDMARC:      {{Type: "TXT", Value: ftDMARC}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rrs := ZoneRecords([]store.Domain{ftDomain()}, pub, ZoneOptions{Zone: testZone, BounceMX: ftBounceMX, SPF: ftSPF, TrackingAddress: tt.track})
			got := ExpectServed(recs, rrs)
			for _, r := range got {
				if !slices.Equal(r.Want, tt.want[r.Purpose]) {
					t.Errorf("%s: Want = %+v, want %+v", r.Purpose, r.Want, tt.want[r.Purpose])
				}
			}
			if recs[0].Want != nil {
				t.Error("ExpectServed modified its input")
			}
		})
	}
}

// TestRecordJSON: Want is never stored or shown; note appears only when set.
func TestRecordJSON(t *testing.T) {
	rec := Record{Purpose: PurposeDKIM, Host: "h", Type: "CNAME", Value: "v", Status: StatusOK, Want: []Served{{Type: "TXT", Value: "v=DKIM1; k=rsa; p=SECRETLOOKING"}}}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); s != `{"purpose":"dkim","host":"h","type":"CNAME","value":"v","status":"ok"}` {
		t.Errorf("JSON = %s", s)
	}
	rec.Note = "flattened"
	if b, _ = json.Marshal(rec); !strings.Contains(string(b), `"note":"flattened"`) {
		t.Errorf("JSON = %s, want a note", b)
	}
}

// TestCheckThroughDelegatedZone: the customer's resolver delegates the
// provider zone to another server (as the internet delegates it to
// sendergate's zone servers); the check follows every CNAME into it, and a
// registration that server does not carry (yet) does not verify.
func TestCheckThroughDelegatedZone(t *testing.T) {
	e := newFTEnv(t)
	provider := dnstest.NewServer(t)
	provider.Reset(t, e.served, nil, nil)
	e.z.Reset(t, e.customer, nil, nil)
	e.z.Delegate(testZone, provider.Addr())
	for _, r := range Check(context.Background(), e.res, e.recs) {
		if r.Status != StatusOK || r.Found != r.Value || r.Reason != "" || r.Note != "" {
			t.Errorf("%s: status %q found %q reason %q note %q, want ok", r.Host, r.Status, r.Found, r.Reason, r.Note)
		}
	}

	provider.Reset(t, nil, nil, nil) // the zone does not carry the registration
	got := Check(context.Background(), e.res, e.recs)
	dkimRec := recordFor(t, got, PurposeDKIM)
	if dkimRec.Status != StatusMismatch || !strings.Contains(dkimRec.Reason, "NXDOMAIN") || !strings.Contains(dkimRec.Reason, "delegated") {
		t.Errorf("dkim: status %q reason %q, want a mismatch naming the delegation", dkimRec.Status, dkimRec.Reason)
	}
	if o := OutcomeOf(got); o != Missed {
		t.Errorf("OutcomeOf = %v, want missed", o)
	}
}
