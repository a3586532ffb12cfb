// Package dnsname is sendergate's one normalizer of DNS host names. Domain
// registration (package domains), mail authorization (package msg) and the
// configuration file (package config) all call Normalize, so a name that
// can be registered and verified is exactly a name mail can be sent from,
// with the same canonical spelling.
//
// The rules, with the RFCs they come from:
//
//   - Host name syntax (RFC 1123 2.1, RFC 1035 2.3.4): labels of 1-63
//     letters, digits and hyphens (LDH), not starting or ending with a
//     hyphen, at most 253 octets in all, without the trailing root dot. One
//     trailing dot ("example.com.") is accepted and removed.
//   - Reserved labels (RFC 5890 2.3.1, RFC 5891 4.2.3.1): a label with
//     hyphens in its third and fourth positions ("ab--cd") is an R-LDH label.
//     Only "xn--" A-labels may have that form, and an A-label must decode
//     (RFC 3492 punycode) to a valid U-label that encodes back to the same
//     A-label; "ab--cd" and a fake A-label such as "xn--zz" are refused.
//   - Internationalized names (RFC 5890, RFC 5891, RFC 5892, RFC 5893):
//     U-labels are validated with the IDNA2008 registration profile of
//     golang.org/x/net/idna and converted to A-labels. The only mapping
//     applied is letter case (RFC 5895 2.1): "BÄNK" is "bänk". Every other
//     mapping of the UTS #46 lookup profile (fullwidth and other
//     compatibility forms, U+3002 and the other dots, mathematical letters,
//     the Kelvin sign) and every invisible character (soft hyphen, zero
//     width space, zero width joiner and non-joiner, variation selectors)
//     is refused with an error that names the character: a lookup profile
//     would map "x@ａ.example" to a.example, and the name a reader sees
//     would not be the name sendergate authorized and signed.
//   - Names must be in Unicode normalization form C (RFC 5891 5.3); a
//     decomposed name is refused rather than composed silently.
//
// Normalize returns the lowercase A-label form. It does not decide how many
// labels a name needs or whether an all-numeric last label is acceptable:
// callers that need "at least two labels" (a sending domain) check that.
package dnsname

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/unicode/runenames"
)

// Limits of RFC 1035 2.3.4, for the A-label form without the root dot.
const (
	MaxLabel = 63
	MaxName  = 253
)

// maxInput bounds the input Normalize looks at; a U-label name longer than
// this cannot fit in 253 octets as A-labels.
const maxInput = 4 * MaxName

var (
	// registration validates U-labels and A-labels without mapping them
	// (RFC 5891 4: IDNA2008 registration; x/net's Registration profile,
	// which includes the Bidi rule and the CONTEXTJ joiner rules).
	registration = idna.Registration
	// lookup is the UTS #46 mapping that a lenient resolver or mail reader
	// applies; Normalize uses it to find the characters it would change
	// (and to say what into), never to change them.
	lookup = idna.New(idna.MapForLookup(), idna.Transitional(false))
)

// Normalize validates the host name s and returns it as lowercase A-labels
// without the trailing dot, or an error naming the problem. See the package
// documentation for the rules.
func Normalize(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("domain name is empty")
	case len(s) > maxInput:
		return "", fmt.Errorf("domain name is %d octets long; at most %d are allowed", len(s), MaxName)
	case s[0] == '[':
		return "", errors.New("an address literal such as [192.0.2.1] is not a domain name")
	case !utf8.ValidString(s):
		return "", errors.New("domain name is not valid UTF-8")
	}
	name := strings.TrimSuffix(s, ".") // the root label (RFC 1034 3.1)
	if name == "" {
		return "", errors.New("domain name is only the root dot")
	}
	var out string
	var idn bool
	var err error
	if isASCII(name) {
		out, idn, err = checkASCII(name)
	} else {
		out, idn, err = lowerLabels(name)
	}
	if err != nil {
		return "", err
	}
	if idn {
		if out, err = normalizeIDN(out); err != nil {
			return "", err
		}
	}
	if len(out) > MaxName {
		return "", fmt.Errorf("domain name is %d octets long (as A-labels); at most %d are allowed", len(out), MaxName)
	}
	return out, nil
}

// checkASCII is the common case, an all-ASCII name: it lowercases name
// (without allocating when it is lowercase already) and checks each label.
// idn reports an xn-- label, which needs the IDNA round trip.
func checkASCII(name string) (out string, idn bool, err error) {
	out = strings.ToLower(name)
	for rest := out; ; {
		label, tail, more := strings.Cut(rest, ".")
		if err := checkLDH(label); err != nil {
			return "", false, err
		}
		idn = idn || strings.HasPrefix(label, "xn--")
		if !more {
			return out, idn, nil
		}
		rest = tail
	}
}

// lowerLabels checks every label of a name with non-ASCII characters:
// ASCII labels as checkASCII does, the others for invisible and mapped
// characters, lowercased where only letter case differs. idn reports
// whether any label needs the IDNA round trip (a U-label or an A-label).
func lowerLabels(name string) (out string, idn bool, err error) {
	var b strings.Builder
	b.Grow(len(name))
	for i, label := range strings.Split(name, ".") {
		if i > 0 {
			b.WriteByte('.')
		}
		if isASCII(label) {
			l := strings.ToLower(label)
			if err := checkLDH(l); err != nil {
				return "", false, err
			}
			idn = idn || strings.HasPrefix(l, "xn--")
			b.WriteString(l)
			continue
		}
		l, err := lowerUnicode(label)
		if err != nil {
			return "", false, err
		}
		idn = true
		b.WriteString(l)
	}
	return b.String(), idn, nil
}

// checkLDH enforces RFC 1123 2.1 and the R-LDH reservation (RFC 5890
// 2.3.1) on one lowercase ASCII label.
func checkLDH(l string) error {
	switch {
	case l == "":
		return errors.New("domain name has an empty label (two dots in a row, or a leading dot)")
	case len(l) > MaxLabel:
		return fmt.Errorf("label %s is %d octets long; at most %d are allowed", quote(l), len(l), MaxLabel)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("label %s starts or ends with a hyphen (RFC 1123 2.1)", quote(l))
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return fmt.Errorf("label %s contains %q; only letters, digits and hyphens are allowed (RFC 1123 2.1)", quote(l), c)
		}
	}
	if len(l) >= 4 && l[2:4] == "--" && !strings.HasPrefix(l, "xn--") {
		// RFC 5891 4.2.3.1: "--" in the third and fourth positions is
		// reserved for A-labels (xn--); any other such label is refused.
		return fmt.Errorf("label %s has hyphens in the third and fourth positions, which are reserved for A-labels (xn--...) (RFC 5891 4.2.3.1)", quote(l))
	}
	return nil
}

// lowerUnicode refuses invisible characters and characters that the IDNA
// lookup mapping would change into other ones, and lowercases letters
// whose lowercase form is the one IDNA maps them to (RFC 5895 2.1).
func lowerUnicode(label string) (string, error) {
	var b strings.Builder
	b.Grow(len(label))
	for _, r := range label {
		if r < utf8.RuneSelf {
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		if invisible(r) {
			return "", fmt.Errorf("domain name contains the invisible character %s: a reader cannot see it, so the name shown would not be the name authorized", describe(r))
		}
		m, _ := lookup.ToUnicode(string(r))
		if m == string(r) {
			b.WriteRune(r)
			continue
		}
		if lr, size := utf8.DecodeRuneInString(m); size == len(m) && lr >= utf8.RuneSelf &&
			(unicode.IsUpper(r) || unicode.IsTitle(r)) && unicode.ToUpper(lr) == r {
			b.WriteRune(lr) // an uppercase letter and its own lowercase form
			continue
		}
		return "", fmt.Errorf("domain name contains %s, which IDNA maps to %+q: the name a reader sees would not be the name authorized; write %+q", describe(r), m, m)
	}
	l := b.String()
	if strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
		return "", fmt.Errorf("label %s starts or ends with a hyphen (RFC 5891 4.2.3.1)", quote(l))
	}
	if r := []rune(l); len(r) >= 4 && r[2] == '-' && r[3] == '-' {
		return "", fmt.Errorf("label %s has hyphens in the third and fourth positions (RFC 5891 4.2.3.1)", quote(l))
	}
	if !norm.NFC.IsNormalString(l) {
		return "", fmt.Errorf("label %s is not in Unicode normalization form C (a letter written with a separate combining mark); write the composed character (RFC 5891 5.3)", quote(l))
	}
	return l, nil
}

// normalizeIDN converts a lowercased name with U-labels or A-labels into
// A-labels and checks that it round-trips exactly: every U-label encodes
// and decodes back to itself, every A-label decodes and encodes back to
// itself (RFC 5891 5.4, 5.5).
func normalizeIDN(name string) (string, error) {
	a, err := registration.ToASCII(name)
	if err != nil {
		return "", fmt.Errorf("not a valid internationalized domain name: %s", idnaProblem(name))
	}
	u, err := registration.ToUnicode(a)
	if err != nil {
		return "", fmt.Errorf("not a valid internationalized domain name: %s", idnaProblem(name))
	}
	in, as, us := strings.Split(name, "."), strings.Split(a, "."), strings.Split(u, ".")
	if len(as) != len(in) || len(us) != len(in) {
		return "", errors.New("not a valid internationalized domain name: its labels change in conversion")
	}
	for i := range in {
		if err := roundTrip(in[i], as[i], us[i]); err != nil {
			return "", err
		}
	}
	return a, nil
}

// roundTrip checks one label: in as given (lowercased), a its A-label and
// u its U-label.
func roundTrip(in, a, u string) error {
	if len(a) > MaxLabel {
		return fmt.Errorf("label %s is %d octets long as an A-label; at most %d are allowed", quote(in), len(a), MaxLabel)
	}
	if !isASCII(in) {
		if u != in {
			return fmt.Errorf("label %s does not round-trip through IDNA (it reads back as %s)", quote(in), quote(u))
		}
		return nil
	}
	if a != in {
		return fmt.Errorf("label %s changes in IDNA conversion (to %s)", quote(in), quote(a))
	}
	if !strings.HasPrefix(in, "xn--") {
		return nil
	}
	if isASCII(u) {
		return fmt.Errorf("label %s is not a valid A-label: it decodes to the ASCII label %s (RFC 5891 5.4)", quote(in), quote(u))
	}
	for _, r := range u {
		if invisible(r) {
			return fmt.Errorf("label %s decodes to a name with the invisible character %s: a reader cannot see it, so the name shown would not be the name authorized", quote(in), describe(r))
		}
	}
	if back, err := registration.ToASCII(u); err != nil || back != in {
		return fmt.Errorf("label %s is not a canonical A-label (RFC 5891 5.4)", quote(in))
	}
	return nil
}

// idnaProblem explains why the registration profile refused name: the
// label that fails and, when one character is not allowed anywhere, that
// character. The errors of x/net/idna quote labels raw, and only say that a
// label is invalid.
func idnaProblem(name string) string {
	for _, label := range strings.Split(name, ".") {
		if _, err := registration.ToASCII(label); err == nil {
			continue
		}
		if a, err := idna.Punycode.ToASCII(label); err == nil && len(a) > MaxLabel {
			return fmt.Sprintf("label %s is %d octets long as an A-label; at most %d are allowed", quote(label), len(a), MaxLabel)
		}
		if strings.HasPrefix(label, "xn--") {
			return fmt.Sprintf("label %s is not a valid A-label: its punycode does not decode to a valid U-label (RFC 5891 5.4)", quote(label))
		}
		for _, r := range label {
			if _, err := registration.ToASCII(string(r)); err != nil && strings.Contains(err.Error(), "disallowed rune") {
				return fmt.Sprintf("label %s contains %s, which IDNA2008 does not allow in domain names (RFC 5892)", quote(label), describe(r))
			}
		}
		return fmt.Sprintf("label %s breaks an IDNA2008 rule: a combining mark first, a joiner or other character out of its context (RFC 5892 appendix A), mixed-direction text (RFC 5893), or a hyphen placement (RFC 5891 4.2.3.1)", quote(label))
	}
	return "its labels mix right-to-left and left-to-right text in a way the Bidi rule forbids (RFC 5893)"
}

// invisible reports whether r renders as nothing or as blank space
// (Unicode default-ignorable code points, format characters, spaces and
// controls). RFC 5892 allows ZWJ and ZWNJ after a virama or in Arabic
// joining contexts; sendergate refuses them anyway, since a reader cannot
// tell a name with one from the name without it.
func invisible(r rune) bool {
	return unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) ||
		unicode.Is(unicode.Variation_Selector, r) || unicode.IsSpace(r) || unicode.IsControl(r) ||
		unicode.Is(unicode.Zs, r) || r == 0x115F || r == 0x1160 || r == 0x3164 || r == 0xFFA0
}

// describe names a code point for a person: "U+00AD SOFT HYPHEN".
func describe(r rune) string {
	if n := runenames.Name(r); n != "" && !strings.HasPrefix(n, "<") {
		return fmt.Sprintf("U+%04X %s", r, n)
	}
	return fmt.Sprintf("U+%04X", r)
}

// quote returns s quoted as printable ASCII, shortened past 40 characters
// so an error stays short enough for an SMTP reply line (RFC 5321
// 4.5.3.1.5).
func quote(s string) string {
	n := 0
	for i := range s {
		if n == 40 {
			return fmt.Sprintf("%+q...", s[:i])
		}
		n++
	}
	return fmt.Sprintf("%+q", s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
