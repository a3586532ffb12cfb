package msg

import (
	"strconv"
	"strings"
	"testing"
)

func TestNormalizeAddress(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		want       string
		wantDomain string
		wantErr    bool
	}{
		{name: "plain", in: "a@example.com", want: "a@example.com", wantDomain: "example.com"},
		{name: "uppercase domain, local part kept", in: "Alice@EXAMPLE.Com", want: "Alice@example.com", wantDomain: "example.com"},
		{name: "trailing dot", in: "a@example.com.", want: "a@example.com", wantDomain: "example.com"},
		{name: "U-label", in: "a@bänk.example", want: "a@xn--bnk-qla.example", wantDomain: "xn--bnk-qla.example"},
		{name: "A-label", in: "a@XN--BNK-QLA.example", want: "a@xn--bnk-qla.example", wantDomain: "xn--bnk-qla.example"},
		{name: "ideographic full stop is mapped, refused", in: "a@bücher。example", wantErr: true},
		{name: "fullwidth letter is mapped, refused", in: "x@ａ.example", wantErr: true},
		{name: "soft hyphen is invisible, refused", in: "x@a\u00ad.example", wantErr: true},
		{name: "zero width space is invisible, refused", in: "x@a\u200b.example", wantErr: true},
		{name: "zero width joiner is invisible, refused", in: "x@a\u200d.example", wantErr: true},
		{name: "zero width non-joiner is invisible, refused", in: "x@a\u200cb.example", wantErr: true},
		{name: "Kelvin sign maps to k, refused", in: "x@\u212aa.example", wantErr: true},
		{name: "reserved hyphens", in: "x@ab--cd.example", wantErr: true},
		{name: "fake A-label", in: "x@xn--zz.example", wantErr: true},
		{name: "RFC 3492 sample (Chinese)", in: "a@他们为什么不说中文.example", want: "a@xn--ihqwcrb4cv8a8dqg056pqjye.example", wantDomain: "xn--ihqwcrb4cv8a8dqg056pqjye.example"},
		{name: "RFC 3492 sample (Japanese mixed)", in: "a@3年b組金八先生.example", want: "a@xn--3b-ww4c5e180e575a65lsy2b.example", wantDomain: "xn--3b-ww4c5e180e575a65lsy2b.example"},
		{name: "quoted local part with @", in: "a@b@example.com", want: "a@b@example.com", wantDomain: "example.com"},
		{name: "no at", in: "example.com", wantErr: true},
		{name: "empty local part", in: "@example.com", wantErr: true},
		{name: "empty domain", in: "a@", wantErr: true},
		{name: "only a dot", in: "a@.", wantErr: true},
		{name: "empty label", in: "a@example..com", wantErr: true},
		{name: "address literal", in: "a@[192.0.2.1]", wantErr: true},
		{name: "underscore", in: "a@ex_ample.com", wantErr: true},
		{name: "leading hyphen", in: "a@-example.com", wantErr: true},
		{name: "encoded word", in: "a@=?utf-8?q?bank?=", wantErr: true},
		{name: "symbol mapped like the domain registry does (UTS 46 Lookup)", in: "a@☃.example", want: "a@xn--n3h.example", wantDomain: "xn--n3h.example"},
		{name: "invalid UTF-8", in: "a@\xff.example", wantErr: true},
		{name: "label too long", in: "a@" + strings.Repeat("a", 64) + ".example", wantErr: true},
		{name: "domain too long", in: "a@" + strings.Repeat("abcdefghi.", 26) + "example", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, domain, err := NormalizeAddress(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NormalizeAddress(%q) = %q, want an error", tt.in, got)
				}
				if !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
					t.Errorf("error %q does not name the address", err)
				}
				return
			}
			if err != nil || got != tt.want || domain != tt.wantDomain {
				t.Errorf("NormalizeAddress(%q) = %q, %q, %v; want %q, %q", tt.in, got, domain, err, tt.want, tt.wantDomain)
			}
		})
	}
}
