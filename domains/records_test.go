package domains

import (
	"reflect"
	"testing"
)

func TestRecords(t *testing.T) {
	const tok = "abcdefghij234567"
	tests := []struct {
		name string
		in   Input
		zone string // testZone when empty
		want []Record
	}{
		{
			name: "dkim only",
			in:   Input{Name: "example.com", DKIMSelector: "sg1"},
			want: []Record{
				{Purpose: PurposeDKIM, Host: "sg1._domainkey.example.com", Type: "CNAME", Value: "sg1." + tok + ".dkim.sg.example.net", Status: "unchecked"},
				{Purpose: PurposeDKIM, Host: "sg1b._domainkey.example.com", Type: "CNAME", Value: "sg1b." + tok + ".dkim.sg.example.net", Status: "unchecked"},
			},
		},
		{
			name: "all four",
			in: Input{Name: "news.example.com", ReturnPath: "mailing", Tracking: "click", DKIMSelector: "mkt1",
				DMARC: &DMARC{Policy: "reject", Pct: 100}},
			want: []Record{
				{Purpose: PurposeDKIM, Host: "mkt1._domainkey.news.example.com", Type: "CNAME", Value: "mkt1." + tok + ".dkim.sg.example.net", Status: "unchecked"},
				{Purpose: PurposeDKIM, Host: "mkt1b._domainkey.news.example.com", Type: "CNAME", Value: "mkt1b." + tok + ".dkim.sg.example.net", Status: "unchecked"},
				{Purpose: PurposeReturnPath, Host: "mailing.news.example.com", Type: "CNAME", Value: tok + ".bounce.sg.example.net", Status: "unchecked"},
				{Purpose: PurposeTracking, Host: "click.news.example.com", Type: "CNAME", Value: "track.sg.example.net", Status: "unchecked"},
				{Purpose: PurposeDMARC, Host: "_dmarc.news.example.com", Type: "CNAME", Value: tok + ".dmarc.sg.example.net", Status: "unchecked"},
			},
		},
		{
			name: "default selector, zone with capitals and trailing dot",
			in:   Input{Name: "example.com", Tracking: "t"},
			zone: "SG.example.net.",
			want: []Record{
				{Purpose: PurposeDKIM, Host: "sg1._domainkey.example.com", Type: "CNAME", Value: "sg1." + tok + ".dkim.sg.example.net", Status: "unchecked"},
				{Purpose: PurposeDKIM, Host: "sg1b._domainkey.example.com", Type: "CNAME", Value: "sg1b." + tok + ".dkim.sg.example.net", Status: "unchecked"},
				{Purpose: PurposeTracking, Host: "t.example.com", Type: "CNAME", Value: "track.sg.example.net", Status: "unchecked"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zone := tt.zone
			if zone == "" {
				zone = testZone
			}
			got := Records(tt.in, tok, zone)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Records\n got %+v\nwant %+v", got, tt.want)
			}
			if again := Records(tt.in, tok, zone); !reflect.DeepEqual(again, got) {
				t.Fatalf("Records is not deterministic")
			}
		})
	}
}

func TestDomainsOfInput(t *testing.T) {
	in := Input{Name: "example.com", ReturnPath: "mailing"}
	if got := in.ReturnPathDomain(); got != "mailing.example.com" {
		t.Errorf("ReturnPathDomain = %q", got)
	}
	if got := in.TrackingDomain(); got != "" {
		t.Errorf("TrackingDomain = %q, want empty", got)
	}
	if got := BounceDomain("tok", "z.example"); got != "tok.bounce.z.example" {
		t.Errorf("BounceDomain = %q", got)
	}
}

func TestDMARCValue(t *testing.T) {
	tests := []struct {
		name string
		in   DMARC
		want string
	}{
		{name: "quarantine pct rua", in: DMARC{Policy: "quarantine", RUA: "mailto:x@y.example", Pct: 50},
			want: "v=DMARC1; p=quarantine; pct=50; rua=mailto:x@y.example"},
		{name: "none has no pct", in: DMARC{Policy: "none", RUA: "mailto:x@y.example"},
			want: "v=DMARC1; p=none; rua=mailto:x@y.example"},
		{name: "reject without rua", in: DMARC{Policy: "reject", Pct: 100},
			want: "v=DMARC1; p=reject; pct=100"},
		{name: "zero pct is 100", in: DMARC{Policy: "reject"},
			want: "v=DMARC1; p=reject; pct=100"},
		{name: "bare rua gets mailto", in: DMARC{Policy: "none", RUA: "x@y.example"},
			want: "v=DMARC1; p=none; rua=mailto:x@y.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DMARCValue(tt.in); got != tt.want {
				t.Fatalf("DMARCValue = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestParseEnvelopeDomain: ParseEnvelopeDomain undoes EnvelopeDomain.
func TestParseEnvelopeDomain(t *testing.T) {
	for _, tt := range []struct{ name, rp, token string }{
		{"example.com", "mailing", "tok1"},
		{"news.example.co.uk", "", "tok2"},
	} {
		label, name, token, ok := ParseEnvelopeDomain(EnvelopeDomain(tt.name, tt.rp, tt.token, "sg.localhost"), "sg.localhost")
		if !ok || (tt.rp != "" && (label != tt.rp || name != tt.name || token != "")) || (tt.rp == "" && token != tt.token) {
			t.Errorf("%+v: got %q %q %q %v", tt, label, name, token, ok)
		}
	}
	for _, bad := range []string{"com", "a.b.bounce.sg.localhost", ".bounce.sg.localhost"} {
		if _, _, _, ok := ParseEnvelopeDomain(bad, "sg.localhost"); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
