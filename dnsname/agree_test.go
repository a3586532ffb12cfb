package dnsname_test

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/net/idna"

	"github.com/sendergate/sendergate/config"
	"github.com/sendergate/sendergate/dnsname"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/msg"
)

// callers runs the three places that validate a domain name on name: domain
// registration, the author address check of mail, and the config file's
// hostname.
type callers struct {
	domain, mail       string // the normalized results
	domainErr, mailErr error
	configOK           bool
}

func runCallers(t testing.TB, name string) callers {
	t.Helper()
	var c callers
	c.domain, c.domainErr = domains.NormalizeDomain(name)
	if !strings.Contains(name, "@") {
		_, c.mail, c.mailErr = msg.NormalizeAddress("x@" + name)
	}
	cfg := config.Default()
	cfg.Hostname = name
	err := cfg.Validate()
	c.configOK = true
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			var fe *config.FieldError
			if errors.As(e, &fe) && fe.Key == "hostname" {
				c.configOK = false
			} else {
				t.Fatalf("config with hostname %+q: unexpected error %v", name, e)
			}
		}
	} else if err != nil {
		t.Fatalf("config with hostname %+q: %v", name, err)
	}
	return c
}

// TestCallersAgree is the issue: a name that registration accepts must be
// a name mail from it is accepted with, as the same domain, and config
// must judge host names the same way. Before package dnsname,
// "ab--cd.example" could be registered and verified while every message
// from it was refused (and config took it as a hostname), and "ａ.example"
// was accepted in mail as a.example.
func TestCallersAgree(t *testing.T) {
	tests := []struct {
		name string
		want string // "" = all three refuse
	}{
		{name: "example.com", want: "example.com"},
		{name: "Mail.Example.COM", want: "mail.example.com"},
		{name: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{name: "ab--cd.example"},
		{name: "r3---sn.example.com"},
		{name: "xn--zz.example"},
		{name: "xn--abc-.example"},
		{name: "a-.example"},
		{name: "a_b.example"},
		{name: "a..example"},
		{name: strings.Repeat("a", 64) + ".example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := runCallers(t, tt.name)
			if tt.want == "" {
				if c.domainErr == nil || c.mailErr == nil || c.configOK {
					t.Fatalf("%q: registration %q, %v; mail %q, %v; config ok %v; want all three to refuse",
						tt.name, c.domain, c.domainErr, c.mail, c.mailErr, c.configOK)
				}
				return
			}
			if c.domain != tt.want || c.mail != tt.want || !c.configOK {
				t.Fatalf("%q: registration %q, %v; mail %q, %v; config ok %v; want %q everywhere",
					tt.name, c.domain, c.domainErr, c.mail, c.mailErr, c.configOK, tt.want)
			}
		})
	}
	// Confusables: refused by registration and mail alike (config refuses
	// every non-ASCII name).
	for _, name := range []string{"ａ.example", "ex\u00adample.com", "ex\u200bample.com", "ex\u200dample.com", "ex\u200cample.com", "bücher。example", "\u212aa.example"} {
		c := runCallers(t, name)
		if c.domainErr == nil || c.mailErr == nil || c.configOK {
			t.Errorf("%+q: registration %q, %v; mail %q, %v; config ok %v; want all three to refuse",
				name, c.domain, c.domainErr, c.mail, c.mailErr, c.configOK)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"example.com", "Example.COM.", "bänk.example", "XN--BNK-QLA.example", "ab--cd.example", "xn--zz.example",
		"ａ.example", "a\u00ad.example", "a\u200d.example", "bücher。example", "\u212aa.example", "192.0.2.1",
		"localhost", "a..b", "-a.b", "ΣΑΣ.example", "\u05d0.0a", "[1.2.3.4]", " example.com ", "xn--11b6iy14e.example",
	} {
		f.Add(s)
	}
	if err := func() error { c := config.Default(); return c.Validate() }(); err != nil {
		f.Fatalf("default config does not validate: %v", err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := dnsname.Normalize(name)
		if err != nil {
			for i := 0; i < len(err.Error()); i++ {
				if c := err.Error()[i]; c < ' ' || c > '~' {
					t.Fatalf("Normalize(%+q) error is not printable ASCII: %q", name, err)
				}
			}
		} else {
			checkCanonical(t, name, got)
		}
		c := runCallers(t, name)

		// Mail accepts exactly what Normalize accepts, with the same result.
		if !strings.Contains(name, "@") && ((c.mailErr == nil) != (err == nil) || c.mail != got) {
			t.Fatalf("%+q: mail %q, %v; Normalize %q, %v", name, c.mail, c.mailErr, got, err)
		}

		// Registration accepts a subset: two labels or more, no IP
		// address, no numeric last label, surrounding blanks ignored.
		trimmed, terr := dnsname.Normalize(strings.TrimSpace(name))
		if c.domainErr == nil && (terr != nil || c.domain != trimmed) {
			t.Fatalf("%+q: registration %q but Normalize %q, %v", name, c.domain, trimmed, terr)
		}
		if err == nil && name == strings.TrimSpace(name) && strings.Contains(got, ".") &&
			strings.Trim(got[strings.LastIndexByte(got, '.')+1:], "0123456789") != "" && c.domainErr != nil {
			t.Fatalf("%+q: Normalize %q but registration refuses: %v", name, got, c.domainErr)
		}
		// Anything registration accepts, mail accepts as the same domain.
		if c.domainErr == nil && name == strings.TrimSpace(name) && !strings.Contains(name, "@") && c.mail != c.domain {
			t.Fatalf("%+q: registration %q, mail %q, %v", name, c.domain, c.mail, c.mailErr)
		}

		// Config takes ASCII names without the root dot that Normalize takes.
		wantConfig := err == nil && isASCII(name) && !strings.HasSuffix(name, ".")
		if c.configOK != wantConfig {
			t.Fatalf("%+q: config ok %v, want %v (Normalize %q, %v)", name, c.configOK, wantConfig, got, err)
		}
	})
}

// checkCanonical asserts the output invariants of an accepted name.
func checkCanonical(t *testing.T, in, got string) {
	t.Helper()
	if got == "" || len(got) > dnsname.MaxName || strings.HasSuffix(got, ".") {
		t.Fatalf("Normalize(%+q) = %q: empty, too long or trailing dot", in, got)
	}
	for _, l := range strings.Split(got, ".") {
		if l == "" || len(l) > dnsname.MaxLabel || l[0] == '-' || l[len(l)-1] == '-' {
			t.Fatalf("Normalize(%+q) = %q: bad label %q", in, got, l)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				t.Fatalf("Normalize(%+q) = %q: label %q is not lowercase LDH", in, got, l)
			}
		}
	}
	if again, err := dnsname.Normalize(got); err != nil || again != got {
		t.Fatalf("Normalize not idempotent: %+q -> %q -> %q, %v", in, got, again, err)
	}
	// No confusable is accepted: what a lenient resolver or mail reader
	// makes of the name (the UTS #46 lookup mapping) is the name accepted,
	// and it is valid under the strict registration profile.
	if l, err := idna.Lookup.ToASCII(in); err != nil || strings.TrimSuffix(l, ".") != got {
		t.Fatalf("Normalize(%+q) = %q, but the lookup profile gives %q, %v", in, got, l, err)
	}
	if _, err := idna.Registration.ToUnicode(got); err != nil {
		t.Fatalf("Normalize(%+q) = %q, which the registration profile refuses: %v", in, got, err)
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
