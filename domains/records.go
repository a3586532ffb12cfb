package domains

import (
	"strconv"
	"strings"
)

// Purpose says what a DNS record delegates.
type Purpose string

// The record purposes, in the order Records returns them.
const (
	PurposeDKIM       Purpose = "dkim"
	PurposeReturnPath Purpose = "return_path"
	PurposeTracking   Purpose = "tracking"
	PurposeDMARC      Purpose = "dmarc"
)

// Record check statuses.
const (
	StatusUnchecked = "unchecked"
	StatusOK        = "ok"
	StatusMissing   = "missing"
	StatusMismatch  = "mismatch"
	// StatusError is a transient DNS failure (SERVFAIL, timeout); it never
	// counts as a miss.
	StatusError = "error"
)

// Record is one CNAME the customer publishes, and the result of its check.
// Host and Value carry no trailing dot.
type Record struct {
	Purpose Purpose `json:"purpose"`
	Host    string  `json:"host"`
	Type    string  `json:"type"`
	Value   string  `json:"value"`
	Status  string  `json:"status"`
	Found   string  `json:"found,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	// Note warns about a record that verifies but should be changed, such
	// as a flattened CNAME (see Check).
	Note string `json:"note,omitempty"`
	// Want is the data sendergate serves at Value, which receivers reach
	// through the CNAME; the caller sets it before Check (see ExpectServed).
	// Empty checks the CNAME alone. Never stored or shown.
	Want []Served `json:"-"`
}

// Records returns the CNAMEs for a normalized input, registration token and
// provider zone, deterministically, all with status "unchecked":
//
//	dkim         SEL._domainkey.D  -> SEL.T.dkim.Z
//	dkim         SELb._domainkey.D -> SELb.T.dkim.Z (the second selector)
//	return_path  LABEL.D           -> T.bounce.Z    (when set)
//	tracking     LABEL.D           -> track.Z       (when set)
//	dmarc        _dmarc.D          -> T.dmarc.Z     (when set)
//
// The two DKIM selectors take turns: one holds the active key, the other
// the next key (see SecondSelector and Service.Rotate).
func Records(in Input, token, zone string) []Record {
	zone = strings.TrimSuffix(strings.ToLower(zone), ".")
	sel := in.DKIMSelector
	if sel == "" {
		sel = DefaultSelector
	}
	recs := []Record{DKIMRecord(in.Name, sel, token, zone), DKIMRecord(in.Name, SecondSelector(sel), token, zone)}
	if in.ReturnPath != "" {
		recs = append(recs, cname(PurposeReturnPath, in.ReturnPathDomain(), BounceDomain(token, zone)))
	}
	if in.Tracking != "" {
		recs = append(recs, cname(PurposeTracking, in.TrackingDomain(), TrackingTarget(zone)))
	}
	if in.DMARC != nil {
		recs = append(recs, cname(PurposeDMARC, "_dmarc."+in.Name, DMARCTarget(token, zone)))
	}
	return recs
}

// SecondSelector is the selector of a registration's second delegated
// DKIM record: the user's selector with "b" appended (sg1 -> sg1b). It
// may be 8 characters long, past the 3-7 the input allows; RFC 6376 3.1
// allows far longer selectors.
func SecondSelector(sel string) string { return sel + "b" }

// DKIMRecord is the CNAME that delegates the DKIM selector sel of the
// domain name: SEL._domainkey.NAME -> SEL.T.dkim.Z.
func DKIMRecord(name, sel, token, zone string) Record {
	zone = strings.TrimSuffix(strings.ToLower(zone), ".")
	return cname(PurposeDKIM, sel+"._domainkey."+name, DKIMTarget(sel, token, zone))
}

func cname(p Purpose, host, value string) Record {
	return Record{Purpose: p, Host: host, Type: "CNAME", Value: value, Status: StatusUnchecked}
}

// DKIMTarget is the name in the provider zone where the DKIM key TXT record
// of a registration is served: SEL.T.dkim.Z.
func DKIMTarget(selector, token, zone string) string {
	return selector + "." + token + ".dkim." + zone
}

// BounceDomain is T.bounce.Z: the target of the return_path CNAME, and the
// envelope sender domain of a registration without its own return path.
func BounceDomain(token, zone string) string { return token + ".bounce." + zone }

// EnvelopeDomain is the domain of a domain's rewritten envelope sender:
// its return-path domain LABEL.NAME when it has a return-path label, else
// T.bounce.ZONE.
func EnvelopeDomain(name, returnPath, token, zone string) string {
	if returnPath != "" {
		return returnPath + "." + name
	}
	return BounceDomain(token, zone)
}

// ParseEnvelopeDomain is the inverse of EnvelopeDomain: for T.bounce.ZONE
// it returns the token T; otherwise it splits LABEL.NAME into the
// return-path label and the domain name. ok is false for a name that can
// be neither (a single label, or a deeper name under bounce.ZONE).
func ParseEnvelopeDomain(domain, zone string) (label, name, token string, ok bool) {
	if t, found := strings.CutSuffix(domain, BounceDomain("", zone)); found { // ".bounce.ZONE"
		return "", "", t, t != "" && !strings.Contains(t, ".")
	}
	label, name, found := strings.Cut(domain, ".")
	return label, name, "", found && label != "" && strings.Contains(name, ".")
}

// TrackingTarget is track.Z, shared by every tracking CNAME.
func TrackingTarget(zone string) string { return "track." + zone }

// DMARCTarget is T.dmarc.Z, where the DMARC TXT record is served.
func DMARCTarget(token, zone string) string { return token + ".dmarc." + zone }

// DMARCValue is the DMARC TXT record value (RFC 7489 6.3), e.g.
// "v=DMARC1; p=quarantine; pct=50; rua=mailto:x@y". Policy none has no pct;
// a zero pct otherwise stands for 100.
func DMARCValue(d DMARC) string {
	var b strings.Builder
	b.WriteString("v=DMARC1; p=" + d.Policy)
	if d.Policy != DMARCNone {
		pct := d.Pct
		if pct == 0 {
			pct = DefaultDMARCPct
		}
		b.WriteString("; pct=" + strconv.Itoa(pct))
	}
	if d.RUA != "" {
		rua := d.RUA
		if !strings.HasPrefix(rua, "mailto:") {
			rua = "mailto:" + rua
		}
		b.WriteString("; rua=" + rua)
	}
	return b.String()
}
