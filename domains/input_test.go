package domains

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

const testZone = "sg.example.net"

func TestNormalize(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	// 4 labels of 63 plus 3 dots = 255; trim to exactly 253 and 254.
	long := strings.Join([]string{label63, label63, label63, label63}, ".")
	name253, name254 := long[len(long)-253:], long[len(long)-254:]
	name253 = strings.TrimLeft(name253, ".")
	tests := []struct {
		name      string
		in        Input
		want      Input  // compared when wantField is ""
		wantField string // the FieldError field expected
	}{
		{name: "defaults", in: Input{Name: "example.com"},
			want: Input{Name: "example.com", DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048"}},
		{name: "IDN to A-label", in: Input{Name: "bücher.example"},
			want: Input{Name: "xn--bcher-kva.example", DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048"}},
		{name: "upper case IDN", in: Input{Name: "BÜCHER.Example"},
			want: Input{Name: "xn--bcher-kva.example", DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048"}},
		{name: "upper case and trailing dot", in: Input{Name: "NewsLetter.Example.COM."},
			want: Input{Name: "newsletter.example.com", DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048"}},
		{name: "full input", in: Input{Name: "example.com", ReturnPath: "Mailing", Tracking: "click",
			DKIMSelector: "mkt1", DKIMAlgorithm: "ed25519",
			DMARC: &DMARC{Policy: "quarantine", RUA: "dmarc@Example.COM", Pct: 50}},
			want: Input{Name: "example.com", ReturnPath: "mailing", Tracking: "click",
				DKIMSelector: "mkt1", DKIMAlgorithm: "ed25519",
				DMARC: &DMARC{Policy: "quarantine", RUA: "mailto:dmarc@example.com", Pct: 50}}},
		{name: "dmarc pct defaults to 100", in: Input{Name: "example.com", DMARC: &DMARC{Policy: "reject"}},
			want: Input{Name: "example.com", DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048", DMARC: &DMARC{Policy: "reject", Pct: 100}}},
		{name: "dmarc none without pct", in: Input{Name: "example.com", DMARC: &DMARC{Policy: "none", RUA: "mailto:r@example.org"}},
			want: Input{Name: "example.com", DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048", DMARC: &DMARC{Policy: "none", RUA: "mailto:r@example.org"}}},
		{name: "253 chars", in: Input{Name: name253},
			want: Input{Name: name253, DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048"}},
		{name: "valid A-label kept", in: Input{Name: "XN--Bcher-KVA.example"},
			want: Input{Name: "xn--bcher-kva.example", DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048"}},
		{name: "U-label return_path", in: Input{Name: "example.com", ReturnPath: "Bücher"},
			want: Input{Name: "example.com", ReturnPath: "xn--bcher-kva", DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048"}},
		{name: "63-char label", in: Input{Name: label63 + ".example"},
			want: Input{Name: label63 + ".example", DKIMSelector: "sg1", DKIMAlgorithm: "rsa-2048"}},

		{name: "empty name", in: Input{}, wantField: "name"},
		{name: "254 chars", in: Input{Name: name254}, wantField: "name"},
		{name: "64-char label", in: Input{Name: label63 + "a.example"}, wantField: "name"},
		{name: "underscore", in: Input{Name: "my_host.example.com"}, wantField: "name"},
		{name: "space inside", in: Input{Name: "my host.example.com"}, wantField: "name"},
		{name: "leading hyphen", in: Input{Name: "-a.example.com"}, wantField: "name"},
		{name: "empty label", in: Input{Name: "a..example.com"}, wantField: "name"},
		{name: "two trailing dots", in: Input{Name: "example.com.."}, wantField: "name"},
		{name: "IPv4 literal", in: Input{Name: "192.0.2.1"}, wantField: "name"},
		{name: "short IPv4", in: Input{Name: "10.1"}, wantField: "name"},
		{name: "IPv6 literal", in: Input{Name: "2001:db8::1"}, wantField: "name"},
		{name: "address literal", in: Input{Name: "[192.0.2.1]"}, wantField: "name"},
		{name: "single label", in: Input{Name: "localhost"}, wantField: "name"},
		{name: "bad punycode", in: Input{Name: "xn--zz.example"}, wantField: "name"},
		{name: "reserved hyphens (RFC 5891 4.2.3.1)", in: Input{Name: "ab--cd.example"}, wantField: "name"},
		{name: "reserved hyphens in a subdomain", in: Input{Name: "r3---sn.example.com"}, wantField: "name"},
		{name: "fullwidth letters", in: Input{Name: "ｅｘａｍｐｌｅ.com"}, wantField: "name"},
		{name: "ideographic full stop", in: Input{Name: "bücher。example"}, wantField: "name"},
		{name: "soft hyphen", in: Input{Name: "ex\u00adample.com"}, wantField: "name"},
		{name: "zero width joiner", in: Input{Name: "ex\u200dample.com"}, wantField: "name"},
		{name: "Kelvin sign", in: Input{Name: "\u212aa.example"}, wantField: "name"},
		{name: "decomposed U-label", in: Input{Name: "ba\u0308nk.example"}, wantField: "name"},
		{name: "return_path reserved hyphens", in: Input{Name: "example.com", ReturnPath: "ab--cd"}, wantField: "return_path"},
		{name: "tracking Kelvin sign", in: Input{Name: "example.com", Tracking: "\u212a"}, wantField: "tracking"},
		{name: "the zone itself", in: Input{Name: "SG.example.net."}, wantField: "name"},
		{name: "inside the zone", in: Input{Name: "acme.sandbox.sg.example.net"}, wantField: "name"},
		{name: "return_path with dot", in: Input{Name: "example.com", ReturnPath: "bounce.example.com"}, wantField: "return_path"},
		{name: "return_path underscore", in: Input{Name: "example.com", ReturnPath: "_rp"}, wantField: "return_path"},
		{name: "tracking 64 chars", in: Input{Name: "example.com", Tracking: label63 + "x"}, wantField: "tracking"},
		{name: "return_path equals tracking", in: Input{Name: "example.com", ReturnPath: "mail", Tracking: "MAIL"}, wantField: "tracking"},
		{name: "label makes name too long", in: Input{Name: name253, ReturnPath: "rp"}, wantField: "return_path"},
		{name: "selector 2 chars", in: Input{Name: "example.com", DKIMSelector: "ab"}, wantField: "dkim_selector"},
		{name: "selector 8 chars", in: Input{Name: "example.com", DKIMSelector: "abcdefgh"}, wantField: "dkim_selector"},
		{name: "selector upper case", in: Input{Name: "example.com", DKIMSelector: "Mkt1"}, wantField: "dkim_selector"},
		{name: "selector hyphen", in: Input{Name: "example.com", DKIMSelector: "mk-1"}, wantField: "dkim_selector"},
		{name: "unknown algorithm", in: Input{Name: "example.com", DKIMAlgorithm: "rsa-1024"}, wantField: "dkim_algorithm"},
		{name: "unknown policy", in: Input{Name: "example.com", DMARC: &DMARC{Policy: "block"}}, wantField: "dmarc.policy"},
		{name: "empty policy", in: Input{Name: "example.com", DMARC: &DMARC{}}, wantField: "dmarc.policy"},
		{name: "pct negative", in: Input{Name: "example.com", DMARC: &DMARC{Policy: "reject", Pct: -1}}, wantField: "dmarc.pct"},
		{name: "pct 101", in: Input{Name: "example.com", DMARC: &DMARC{Policy: "reject", Pct: 101}}, wantField: "dmarc.pct"},
		{name: "pct with none", in: Input{Name: "example.com", DMARC: &DMARC{Policy: "none", Pct: 50}}, wantField: "dmarc.pct"},
		{name: "rua without at", in: Input{Name: "example.com", DMARC: &DMARC{Policy: "none", RUA: "dmarc.example.com"}}, wantField: "dmarc.rua"},
		{name: "rua bad domain", in: Input{Name: "example.com", DMARC: &DMARC{Policy: "none", RUA: "a@localhost"}}, wantField: "dmarc.rua"},
		{name: "rua with comma", in: Input{Name: "example.com", DMARC: &DMARC{Policy: "none", RUA: "a,b@example.com"}}, wantField: "dmarc.rua"},
		{name: "rua display name", in: Input{Name: "example.com", DMARC: &DMARC{Policy: "none", RUA: "Reports <r@example.com>"}}, wantField: "dmarc.rua"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.in, testZone)
			if tt.wantField != "" {
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("Normalize(%+v) = %+v, %v; want a FieldError on %q", tt.in, got, err, tt.wantField)
				}
				if fe.Field != tt.wantField || fe.Message == "" {
					t.Fatalf("FieldError = %q %q, want field %q with a message", fe.Field, fe.Message, tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize(%+v): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Normalize(%+v)\n got %+v %+v\nwant %+v %+v", tt.in, got, got.DMARC, tt.want, tt.want.DMARC)
			}
			again, err := Normalize(got, testZone)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("Normalize is not idempotent: %+v, %v", again, err)
			}
		})
	}
}

// TestNormalizeDMARCPctJSON: an explicit "pct": 0 is refused, an omitted pct
// is the default.
func TestNormalizeDMARCPctJSON(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantPct   int
		wantError bool
	}{
		{name: "omitted", body: `{"name":"example.com","dmarc":{"policy":"quarantine"}}`, wantPct: 100},
		{name: "given", body: `{"name":"example.com","dmarc":{"policy":"quarantine","pct":25}}`, wantPct: 25},
		{name: "explicit zero", body: `{"name":"example.com","dmarc":{"policy":"quarantine","pct":0}}`, wantError: true},
		{name: "explicit zero with none", body: `{"name":"example.com","dmarc":{"policy":"none","pct":0}}`, wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in Input
			if err := json.Unmarshal([]byte(tt.body), &in); err != nil {
				t.Fatal(err)
			}
			got, err := Normalize(in, testZone)
			if tt.wantError {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != "dmarc.pct" {
					t.Fatalf("err = %v, want a FieldError on dmarc.pct", err)
				}
				return
			}
			if err != nil || got.DMARC.Pct != tt.wantPct {
				t.Fatalf("Normalize = %+v, %v; want pct %d", got.DMARC, err, tt.wantPct)
			}
		})
	}
}

func TestFieldErrorMessage(t *testing.T) {
	_, err := Normalize(Input{Name: "example.com", DKIMSelector: "ab"}, testZone)
	if err == nil || !strings.HasPrefix(err.Error(), "dkim_selector: ") {
		t.Fatalf("err = %v, want it to start with the field name", err)
	}
}

func TestNewToken(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z2-7]{16}$`)
	seen := map[string]bool{}
	for range 100 {
		tok := NewToken()
		if !valid.MatchString(tok) {
			t.Fatalf("token %q is not 16 chars of lowercase base32", tok)
		}
		if seen[tok] {
			t.Fatalf("token %q repeated", tok)
		}
		seen[tok] = true
	}
}

func FuzzNormalizeDomain(f *testing.F) {
	for _, s := range []string{"example.com", "bücher.example", "EXAMPLE.com.", "xn--bcher-kva.example",
		"192.0.2.1", "a..b", "a_b.example", "ｅｘａｍｐｌｅ.com", "a.b。", "-a.b", "xn--zz.ex"} {
		f.Add(s)
	}
	ldh := regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	f.Fuzz(func(t *testing.T, name string) {
		got, err := NormalizeDomain(name)
		if err != nil {
			return
		}
		if len(got) > 253 || strings.HasSuffix(got, ".") {
			t.Fatalf("NormalizeDomain(%q) = %q: too long or trailing dot", name, got)
		}
		labels := strings.Split(got, ".")
		if len(labels) < 2 {
			t.Fatalf("NormalizeDomain(%q) = %q: fewer than two labels", name, got)
		}
		for _, l := range labels {
			if !ldh.MatchString(l) {
				t.Fatalf("NormalizeDomain(%q) = %q: label %q is not LDH", name, got, l)
			}
		}
		again, err := NormalizeDomain(got)
		if err != nil || again != got {
			t.Fatalf("NormalizeDomain(%q) = %q, but again gives %q, %v", name, got, again, err)
		}
	})
}
