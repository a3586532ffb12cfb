package dnsname

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	name253 := strings.Repeat("abcdefghi.", 25) + "abc" // 25*10 + 3
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string // in the error text; "" = success
	}{
		{name: "plain", in: "example.com", want: "example.com"},
		{name: "single label", in: "localhost", want: "localhost"},
		{name: "upper case", in: "Mail.EXAMPLE.Com", want: "mail.example.com"},
		{name: "trailing root dot", in: "example.com.", want: "example.com"},
		{name: "digits and hyphens", in: "a-1.2b.example", want: "a-1.2b.example"},
		{name: "numeric labels are the caller's business", in: "192.0.2.1", want: "192.0.2.1"},
		{name: "63-octet label", in: label63 + ".example", want: label63 + ".example"},
		{name: "253 octets", in: name253, want: name253},
		{name: "253 octets and the root dot", in: name253 + ".", want: name253},
		{name: "U-label", in: "bänk.example", want: "xn--bnk-qla.example"},
		{name: "upper case U-label", in: "BÄNK.Example", want: "xn--bnk-qla.example"},
		{name: "A-label", in: "xn--bnk-qla.example", want: "xn--bnk-qla.example"},
		{name: "upper case A-label", in: "XN--BNK-QLA.example", want: "xn--bnk-qla.example"},
		{name: "RFC 3492 sample", in: "他们为什么不说中文.example", want: "xn--ihqwcrb4cv8a8dqg056pqjye.example"},
		{name: "sharp s is its own letter (IDNA2008)", in: "faß.de", want: "xn--fa-hia.de"},
		{name: "upper case Greek", in: "ΣΑΣ.example", want: "xn--mxa9ab.example"},
		{name: "Cherokee keeps its upper case", in: "\u13a0.example", want: "xn--58d.example"},

		{name: "empty", in: "", wantErr: "empty"},
		{name: "root only", in: ".", wantErr: "root dot"},
		{name: "two trailing dots", in: "example.com..", wantErr: "empty label"},
		{name: "leading dot", in: ".example.com", wantErr: "empty label"},
		{name: "empty label", in: "a..example", wantErr: "empty label"},
		{name: "64-octet label", in: label63 + "a.example", wantErr: "64 octets long"},
		{name: "254 octets", in: "a" + name253, wantErr: "254 octets long"},
		{name: "huge input", in: strings.Repeat("a.", 600), wantErr: "octets long"},
		{name: "leading hyphen", in: "-a.example", wantErr: "starts or ends with a hyphen"},
		{name: "trailing hyphen", in: "a-.example", wantErr: "starts or ends with a hyphen"},
		{name: "underscore", in: "_dmarc.example", wantErr: `contains '_'`},
		{name: "space", in: "a b.example", wantErr: `contains ' '`},
		{name: "address literal", in: "[192.0.2.1]", wantErr: "address literal"},
		{name: "invalid UTF-8", in: "\xff.example", wantErr: "UTF-8"},
		{name: "reserved hyphens", in: "ab--cd.example", wantErr: "third and fourth positions"},
		{name: "reserved hyphens, upper case", in: "AB--CD.example", wantErr: "third and fourth positions"},
		{name: "reserved hyphens, three in a row", in: "r3---sn.example", wantErr: "third and fourth positions"},
		{name: "reserved hyphens in a U-label", in: "bä--nk.example", wantErr: "third and fourth positions"},
		{name: "U-label with leading hyphen", in: "-bänk.example", wantErr: "starts or ends with a hyphen"},
		{name: "fake A-label", in: "xn--zz.example", wantErr: `"xn--zz" is not a valid A-label`},
		{name: "A-label of an ASCII label", in: "xn--abc-.example", wantErr: "hyphen"},
		{name: "A-label of ASCII", in: "xn--example-.com", wantErr: "hyphen"},
		{name: "non-canonical A-label", in: "xn--a.example", wantErr: "not a valid A-label"},
		{name: "A-label decoding to a ZWJ", in: "xn--11b6iy14e.example", wantErr: "U+200D ZERO WIDTH JOINER"},
		{name: "fullwidth letter", in: "ａ.example", wantErr: `U+FF41 FULLWIDTH LATIN SMALL LETTER A, which IDNA maps to "a"`},
		{name: "fullwidth name", in: "ｅｘａｍｐｌｅ.com", wantErr: "FULLWIDTH"},
		{name: "ideographic full stop", in: "bücher。example", wantErr: `U+3002 IDEOGRAPHIC FULL STOP, which IDNA maps to "."`},
		{name: "fullwidth full stop", in: "example．com", wantErr: "U+FF0E"},
		{name: "mathematical bold letter", in: "\U0001d41a.example", wantErr: "U+1D41A MATHEMATICAL BOLD SMALL A"},
		{name: "Kelvin sign", in: "\u212aa.example", wantErr: `U+212A KELVIN SIGN, which IDNA maps to "k"`},
		{name: "Angstrom sign", in: "\u212b.example", wantErr: "U+212B ANGSTROM SIGN"},
		{name: "dotted capital I", in: "\u0130.example", wantErr: "U+0130"},
		{name: "capital sharp s maps to ss", in: "fa\u1e9e.de", wantErr: "U+1E9E"},
		{name: "soft hyphen", in: "a\u00ad.example", wantErr: "invisible character U+00AD SOFT HYPHEN"},
		{name: "zero width space", in: "a\u200b.example", wantErr: "invisible character U+200B ZERO WIDTH SPACE"},
		{name: "zero width non-joiner", in: "a\u200cb.example", wantErr: "invisible character U+200C ZERO WIDTH NON-JOINER"},
		{name: "zero width joiner", in: "a\u200d.example", wantErr: "invisible character U+200D ZERO WIDTH JOINER"},
		{name: "zero width joiner after virama (CONTEXTJ)", in: "\u0915\u094d\u200d.example", wantErr: "U+200D ZERO WIDTH JOINER"},
		{name: "variation selector", in: "a\ufe0f.example", wantErr: "invisible character U+FE0F"},
		{name: "Hangul filler", in: "\u3164.example", wantErr: "invisible character U+3164"},
		{name: "byte order mark", in: "\ufeffexample.com", wantErr: "invisible character U+FEFF"},
		{name: "no-break space", in: "a\u00a0b.example", wantErr: "invisible character U+00A0"},
		{name: "decomposed letter", in: "ba\u0308nk.example", wantErr: "normalization form C"},
		{name: "combining mark first", in: "\u0308a.example", wantErr: "IDNA2008 rule"},
		{name: "disallowed symbol", in: "a\u2488.example", wantErr: "U+2488"},
		{name: "underscore in a U-label", in: "bä_nk.example", wantErr: "U+005F LOW LINE"},
		{name: "Bidi rule across labels", in: "\u05d0.0a", wantErr: "Bidi"},
		{name: "U-label too long as A-label", in: strings.Repeat("ä", 60) + ".example", wantErr: "as an A-label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Normalize(%+q) = %q, want an error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Normalize(%+q) error %q does not contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Normalize(%+q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func BenchmarkNormalize(b *testing.B) {
	for _, name := range []string{"newsletter.example.com", "bänk.example"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Normalize(name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
