package domains

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/sendergate/sendergate/dnsname"
)

// Defaults applied by Normalize.
const (
	DefaultSelector  = "sg1"
	AlgorithmRSA2048 = "rsa-2048"
	AlgorithmEd25519 = "ed25519"
	DefaultAlgorithm = AlgorithmRSA2048
	DefaultDMARCPct  = 100
)

// DMARC policies accepted in the input (RFC 7489 6.3, tag p).
const (
	DMARCNone       = "none"
	DMARCQuarantine = "quarantine"
	DMARCReject     = "reject"
)

// DMARC is the optional DMARC policy that sendergate publishes for a domain.
type DMARC struct {
	Policy string `json:"policy"`
	RUA    string `json:"rua,omitempty"`
	Pct    int    `json:"pct,omitempty"`

	// pctGiven records an explicit "pct" in JSON input, so that "pct": 0
	// is refused instead of being taken for an omitted pct.
	pctGiven bool
}

// UnmarshalJSON decodes a DMARC object and remembers whether pct was given.
func (d *DMARC) UnmarshalJSON(b []byte) error {
	var w struct {
		Policy string `json:"policy"`
		RUA    string `json:"rua"`
		Pct    *int   `json:"pct"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			name = strings.Trim(name, `"`)
			return &FieldError{Field: "dmarc." + name, Message: fmt.Sprintf("unknown field %q", "dmarc."+name)}
		}
		return err
	}
	*d = DMARC{Policy: w.Policy, RUA: w.RUA}
	if w.Pct != nil {
		d.Pct, d.pctGiven = *w.Pct, true
	}
	return nil
}

// Input is the domain registration as the admin API receives it.
type Input struct {
	Name          string `json:"name"`
	ReturnPath    string `json:"return_path,omitempty"`
	Tracking      string `json:"tracking,omitempty"`
	DKIMSelector  string `json:"dkim_selector,omitempty"`
	DKIMAlgorithm string `json:"dkim_algorithm,omitempty"`
	DMARC         *DMARC `json:"dmarc,omitempty"`
}

// ReturnPathDomain is the bounce domain LABEL.NAME, or "" without one.
func (in Input) ReturnPathDomain() string { return subdomain(in.ReturnPath, in.Name) }

// TrackingDomain is the link-tracking domain LABEL.NAME, or "" without one.
func (in Input) TrackingDomain() string { return subdomain(in.Tracking, in.Name) }

func subdomain(label, name string) string {
	if label == "" {
		return ""
	}
	return label + "." + name
}

// FieldError names the JSON field of the input that is wrong, e.g. "name",
// "return_path", "dkim_selector" or "dmarc.pct".
type FieldError struct {
	Field   string
	Message string
}

// Error returns "field: message".
func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Normalize validates in and returns its canonical form: the name as a
// lowercase A-label without trailing dot, labels lowercased, defaults filled
// in (selector "sg1", algorithm "rsa-2048", DMARC pct 100 unless the policy
// is none), rua as a mailto: URI. providerZone is the zone sendergate serves;
// a name equal to or inside it is refused. The first failure is returned as
// a *FieldError.
func Normalize(in Input, providerZone string) (Input, error) {
	name, err := NormalizeDomain(in.Name)
	if err != nil {
		return Input{}, &FieldError{"name", err.Error()}
	}
	zone := strings.TrimSuffix(strings.ToLower(providerZone), ".")
	if zone != "" && (name == zone || strings.HasSuffix(name, "."+zone)) {
		return Input{}, &FieldError{"name", fmt.Sprintf("%s is inside the provider zone %s, which sendergate serves itself", name, zone)}
	}
	out := Input{Name: name}
	if out.ReturnPath, err = normalizeLabel("return_path", in.ReturnPath, name); err != nil {
		return Input{}, err
	}
	if out.Tracking, err = normalizeLabel("tracking", in.Tracking, name); err != nil {
		return Input{}, err
	}
	if out.Tracking != "" && out.Tracking == out.ReturnPath {
		return Input{}, &FieldError{"tracking", "must differ from return_path: the two need separate CNAME records"}
	}
	if out.DKIMSelector, err = normalizeSelector(in.DKIMSelector); err != nil {
		return Input{}, err
	}
	switch alg := strings.ToLower(strings.TrimSpace(in.DKIMAlgorithm)); alg {
	case "":
		out.DKIMAlgorithm = DefaultAlgorithm
	case AlgorithmRSA2048, AlgorithmEd25519:
		out.DKIMAlgorithm = alg
	default:
		return Input{}, &FieldError{"dkim_algorithm", fmt.Sprintf("unknown algorithm %q: use %q (default) or %q", in.DKIMAlgorithm, AlgorithmRSA2048, AlgorithmEd25519)}
	}
	if in.DMARC != nil {
		d, err := normalizeDMARC(*in.DMARC)
		if err != nil {
			return Input{}, err
		}
		out.DMARC = &d
	}
	return out, nil
}

// NormalizeDomain validates a sending domain and returns it in the one
// canonical form sendergate compares (dnsname.Normalize: lowercase
// A-labels, no trailing dot; mapped, invisible and reserved "??--" labels
// refused). Surrounding blanks are ignored. The name needs at least two
// labels and must not be an IP address literal or end in an all-numeric
// label.
func NormalizeDomain(name string) (string, error) {
	s := strings.TrimSpace(name)
	if s == "" {
		return "", fmt.Errorf("domain name is empty")
	}
	if isIPLiteral(s) {
		return "", fmt.Errorf("%+q is an IP address; a domain name is required", name)
	}
	s, err := dnsname.Normalize(s)
	if err != nil {
		return "", err
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("%+q is a single label; a domain name such as example.com is required", name)
	}
	// RFC 1123 2.1 / RFC 3696 2: an all-numeric top-level label makes the
	// name indistinguishable from a (possibly abbreviated) IPv4 address.
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", fmt.Errorf("%+q ends in a numeric label and looks like an IP address", name)
	}
	return s, nil
}

func isIPLiteral(s string) bool {
	if strings.HasPrefix(s, "[") {
		return true // SMTP address literal, [1.2.3.4] or [IPv6:...]
	}
	_, err := netip.ParseAddr(strings.TrimSuffix(s, "."))
	return err == nil
}

// normalizeLabel validates the return_path or tracking label; "" stays "".
func normalizeLabel(field, label, name string) (string, error) {
	s := strings.TrimSpace(label) // dnsname lowercases, refusing case mappings such as the Kelvin sign
	if s == "" {
		return "", nil
	}
	if strings.Contains(s, ".") {
		return "", &FieldError{field, fmt.Sprintf("%q must be a single label such as \"mailing\", not a domain name; it is placed under %s", label, name)}
	}
	s, err := dnsname.Normalize(s)
	if err != nil {
		return "", &FieldError{field, err.Error()}
	}
	if n := len(s) + 1 + len(name); n > 253 {
		return "", &FieldError{field, fmt.Sprintf("%s.%s would be %d characters long, at most 253 are allowed", s, name, n)}
	}
	return s, nil
}

// normalizeSelector checks the DKIM selector (RFC 6376 3.1; sendergate
// narrows it to 3-7 of [a-z0-9]).
func normalizeSelector(sel string) (string, error) {
	if sel == "" {
		return DefaultSelector, nil
	}
	if len(sel) < 3 || len(sel) > 7 {
		return "", &FieldError{"dkim_selector", fmt.Sprintf("%q is %d characters long; a selector has 3 to 7", sel, len(sel))}
	}
	for i := 0; i < len(sel); i++ {
		if c := sel[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return "", &FieldError{"dkim_selector", fmt.Sprintf("%q contains %q; a selector has only lowercase letters a-z and digits", sel, c)}
		}
	}
	return sel, nil
}

func normalizeDMARC(d DMARC) (DMARC, error) {
	out := DMARC{Policy: strings.ToLower(strings.TrimSpace(d.Policy))}
	switch out.Policy {
	case DMARCNone, DMARCQuarantine, DMARCReject:
	default:
		return DMARC{}, &FieldError{"dmarc.policy", fmt.Sprintf("unknown policy %q: use none, quarantine or reject", d.Policy)}
	}
	if d.RUA != "" {
		rua, err := normalizeRUA(d.RUA)
		if err != nil {
			return DMARC{}, &FieldError{"dmarc.rua", err.Error()}
		}
		out.RUA = rua
	}
	given := d.pctGiven || d.Pct != 0
	switch {
	case out.Policy == DMARCNone && given:
		return DMARC{}, &FieldError{"dmarc.pct", "pct applies only to quarantine and reject; remove it with policy none"}
	case out.Policy == DMARCNone:
	case !given:
		out.Pct = DefaultDMARCPct
	case d.Pct < 1 || d.Pct > 100:
		return DMARC{}, &FieldError{"dmarc.pct", fmt.Sprintf("%d is out of range: pct is a percentage from 1 to 100", d.Pct)}
	default:
		out.Pct = d.Pct
	}
	return out, nil
}

// normalizeRUA accepts "addr@domain" or "mailto:addr@domain" and returns the
// mailto: URI (RFC 7489 6.2). Characters that DMARC URIs reserve ("," and
// "!") are refused rather than percent-encoded.
func normalizeRUA(rua string) (string, error) {
	s := strings.TrimSpace(rua)
	if len(s) >= 7 && strings.EqualFold(s[:7], "mailto:") {
		s = s[7:]
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", fmt.Errorf("%q is not an email address such as dmarc@example.com", rua)
	}
	local, domain := s[:at], s[at+1:]
	if err := checkLocalPart(local); err != nil {
		return "", fmt.Errorf("%q is not a usable email address: %w", rua, err)
	}
	d, err := NormalizeDomain(domain)
	if err != nil {
		return "", fmt.Errorf("%q is not a usable email address: %w", rua, err)
	}
	return "mailto:" + local + "@" + d, nil
}

// checkLocalPart accepts a dot-atom local part (RFC 5322 3.4.1) without the
// characters that DMARC URI lists reserve.
func checkLocalPart(local string) error {
	if len(local) > 64 {
		return fmt.Errorf("the local part is longer than 64 characters")
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return fmt.Errorf("the local part has a misplaced dot")
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte(".#$%&'*+-/=?^_`{|}~", c) >= 0
		if !ok {
			return fmt.Errorf("the local part contains %q", c)
		}
	}
	return nil
}

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewToken returns a random registration token: 80 bits from crypto/rand as
// 16 characters of lowercase base32, usable as a DNS label.
func NewToken() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go 1.24+)
	return tokenEncoding.EncodeToString(b)
}
