package domains

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/internal/dnstest"
)

const checkToken = "tok0123456789abc"

func checkInput() Input {
	return Input{Name: "example.com", ReturnPath: "mailing", Tracking: "click", DKIMSelector: "sg1",
		DMARC: &DMARC{Policy: "none"}}
}

// okRRs publishes every record of recs correctly.
func okRRs(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Host+". 300 IN CNAME "+r.Value+".")
	}
	return out
}

func newTestResolver(t *testing.T, addr string) *DNSResolver {
	t.Helper()
	r, err := NewDNSResolver([]string{addr}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheckAllOK(t *testing.T) {
	z := dnstest.NewServer(t)
	recs := Records(checkInput(), checkToken, testZone)
	z.Reset(t, okRRs(recs), nil, nil)
	got := Check(context.Background(), newTestResolver(t, z.Addr()), recs)
	if len(got) != 5 {
		t.Fatalf("got %d records, want 5 (two DKIM selectors)", len(got))
	}
	for i, r := range got {
		if r.Status != StatusOK || r.Found != recs[i].Value || r.Reason != "" {
			t.Errorf("%s: status %q found %q reason %q, want ok", r.Host, r.Status, r.Found, r.Reason)
		}
		if r.Host != recs[i].Host || r.Value != recs[i].Value || r.Purpose != recs[i].Purpose {
			t.Errorf("record %d changed its name or value: %+v", i, r)
		}
	}
	if recs[0].Status != StatusUnchecked {
		t.Errorf("Check modified its input: %+v", recs[0])
	}
	if OutcomeOf(got) != AllOK {
		t.Errorf("OutcomeOf = %v, want all-ok", OutcomeOf(got))
	}
	if !z.SawEDNS() {
		t.Error("queries carried no EDNS0 OPT record")
	}
}

func TestCheckRecord(t *testing.T) {
	z := dnstest.NewServer(t)
	res := newTestResolver(t, z.Addr())
	recs := Records(checkInput(), checkToken, testZone)
	dkimValue := "sg1." + checkToken + ".dkim." + testZone
	tests := []struct {
		name       string
		rrs        []string
		servfail   []string
		truncate   []string
		purpose    Purpose // the record inspected
		wantStatus string
		wantFound  string
		wantReason []string // substrings of Reason
	}{
		{name: "missing", purpose: PurposeDKIM, wantStatus: StatusMissing,
			wantReason: []string{"sg1._domainkey.example.com", "does not exist", "CNAME", dkimValue}},
		{name: "no data at an existing name", purpose: PurposeReturnPath, wantStatus: StatusMissing,
			rrs:        []string{"mailing.example.com. 300 IN MX 10 mx.example.com."},
			wantReason: []string{"has no CNAME record", checkToken + ".bounce." + testZone}},
		{name: "wrong target", purpose: PurposeDKIM, wantStatus: StatusMismatch,
			rrs:        []string{"sg1._domainkey.example.com. 300 IN CNAME sg1.dkim.other-esp.example."},
			wantFound:  "sg1.dkim.other-esp.example",
			wantReason: []string{"sg1.dkim.other-esp.example", "must point to " + dkimValue}},
		{name: "old token", purpose: PurposeDKIM, wantStatus: StatusMismatch,
			rrs:        []string{"sg1._domainkey.example.com. 300 IN CNAME sg1.oldtoken0000000.dkim." + testZone + "."},
			wantFound:  "sg1.oldtoken0000000.dkim." + testZone,
			wantReason: []string{"earlier registration", dkimValue}},
		{name: "value taken as relative", purpose: PurposeDKIM, wantStatus: StatusMismatch,
			rrs:        []string{"sg1._domainkey.example.com. 300 IN CNAME " + dkimValue + ".example.com."},
			wantFound:  dkimValue + ".example.com",
			wantReason: []string{"final dot"}},
		{name: "zone appended twice", purpose: PurposeDKIM, wantStatus: StatusMissing,
			rrs:        []string{"sg1._domainkey.example.com.example.com. 300 IN CNAME " + dkimValue + "."},
			wantReason: []string{"sg1._domainkey.example.com.example.com", "appended the domain", "Enter only sg1._domainkey as"}},
		{name: "A instead of CNAME", purpose: PurposeTracking, wantStatus: StatusMismatch,
			rrs:        []string{"click.example.com. 300 IN A 192.0.2.10", "click.example.com. 300 IN AAAA 2001:db8::10"},
			wantFound:  "A 192.0.2.10, AAAA 2001:db8::10",
			wantReason: []string{"turn off proxying / CNAME flattening", "track." + testZone}},
		{name: "TXT instead of CNAME", purpose: PurposeDMARC, wantStatus: StatusMismatch,
			rrs:        []string{`_dmarc.example.com. 300 IN TXT "v=DMARC1; p=none"`},
			wantFound:  `TXT "v=DMARC1; p=none"`,
			wantReason: []string{"TXT record", "Delete the TXT record", "DMARC policy"}},
		{name: "SERVFAIL is an error, not a miss", purpose: PurposeDKIM, wantStatus: StatusError,
			servfail:   []string{"sg1._domainkey.example.com"},
			wantReason: []string{"SERVFAIL", "not counted as a missing record", "retried"}},
		{name: "case and trailing dot do not matter", purpose: PurposeDKIM, wantStatus: StatusOK,
			rrs:       []string{"SG1._DomainKey.Example.COM. 300 IN CNAME " + strings.ToUpper(dkimValue) + "."},
			wantFound: dkimValue},
		{name: "truncated over UDP, answered over TCP", purpose: PurposeDKIM, wantStatus: StatusOK,
			rrs:       []string{"sg1._domainkey.example.com. 300 IN CNAME " + dkimValue + "."},
			truncate:  []string{"sg1._domainkey.example.com"},
			wantFound: dkimValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z.Reset(t, tt.rrs, tt.servfail, tt.truncate)
			got := recordFor(t, Check(context.Background(), res, recs), tt.purpose)
			t.Logf("reason: %s", got.Reason)
			if got.Status != tt.wantStatus || got.Found != tt.wantFound {
				t.Fatalf("status %q found %q, want %q %q (reason %q)", got.Status, got.Found, tt.wantStatus, tt.wantFound, got.Reason)
			}
			for _, s := range tt.wantReason {
				if !strings.Contains(strings.ToLower(got.Reason), strings.ToLower(s)) {
					t.Errorf("reason %q does not mention %q", got.Reason, s)
				}
			}
		})
	}
}

func recordFor(t *testing.T, recs []Record, p Purpose) Record {
	t.Helper()
	for _, r := range recs {
		if r.Purpose == p {
			return r
		}
	}
	t.Fatalf("no %s record in %+v", p, recs)
	return Record{}
}

func TestCheckTruncationUsesTCP(t *testing.T) {
	z := dnstest.NewServer(t)
	recs := Records(Input{Name: "example.com", DKIMSelector: "sg1"}, checkToken, testZone)
	z.Reset(t, okRRs(recs), nil, []string{recs[0].Host})
	got := Check(context.Background(), newTestResolver(t, z.Addr()), recs)
	if got[0].Status != StatusOK || !z.SawTCP() {
		t.Fatalf("status %q, TCP used %v; want ok over TCP", got[0].Status, z.SawTCP())
	}
}

func TestCheckOutcomes(t *testing.T) {
	z := dnstest.NewServer(t)
	res := newTestResolver(t, z.Addr())
	recs := Records(checkInput(), checkToken, testZone)
	all := okRRs(recs)
	tests := []struct {
		name     string
		rrs      []string
		servfail []string
		want     Outcome
	}{
		{name: "all ok", rrs: all, want: AllOK},
		{name: "one SERVFAIL, rest ok", rrs: all, servfail: []string{recs[1].Host}, want: Transient},
		{name: "one missing, one SERVFAIL", rrs: all[2:], servfail: []string{recs[1].Host}, want: Missed},
		{name: "one missing", rrs: all[1:], want: Missed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z.Reset(t, tt.rrs, tt.servfail, nil)
			got := Check(context.Background(), res, recs)
			if o := OutcomeOf(got); o != tt.want {
				t.Fatalf("OutcomeOf = %v, want %v (records %+v)", o, tt.want, got)
			}
		})
	}
}

// TestCheckTimeout: a resolver that never answers gives "error", not a miss.
func TestCheckTimeout(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	res, err := NewDNSResolver([]string{pc.LocalAddr().String()}, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	recs := Records(Input{Name: "example.com"}, checkToken, testZone)
	got := Check(context.Background(), res, recs)
	if got[0].Status != StatusError || !strings.Contains(got[0].Reason, "retried") {
		t.Fatalf("status %q reason %q, want a transient error", got[0].Status, got[0].Reason)
	}
	if OutcomeOf(got) != Transient {
		t.Fatalf("OutcomeOf = %v, want transient", OutcomeOf(got))
	}
}

func TestNewDNSResolverAddsPort(t *testing.T) {
	r, err := NewDNSResolver([]string{"192.0.2.53", "[2001:db8::53]", "192.0.2.54:5353"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.53:53", "[2001:db8::53]:53", "192.0.2.54:5353"}
	if strings.Join(r.servers, " ") != strings.Join(want, " ") {
		t.Fatalf("servers = %v, want %v", r.servers, want)
	}
}
