package domains

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// CheckTimeout bounds a whole Check unless ctx has an earlier deadline.
const CheckTimeout = 20 * time.Second

// Check looks up every record in parallel and returns a copy of recs with
// Status, Found, Reason and Note filled in: "ok", "missing" (NXDOMAIN or no
// data), "mismatch" (something else is there; Found says what) or "error"
// (a transient failure that must not count as a miss). Names compare
// without regard to case or a trailing dot.
//
// A record with Want is followed past its CNAME, as a receiver follows it:
// a right CNAME is ok only when its target, asked through the same
// resolvers, serves exactly Want; NXDOMAIN or no data there (a broken
// delegation of the provider zone) or other data (a stale zone) is a
// mismatch, a transient failure there an error. A host without a CNAME
// that answers with exactly Want itself is a CNAME flattened by the DNS
// provider: ok, with a Note saying it will not follow the target's changes.
func Check(ctx context.Context, r Resolver, recs []Record) []Record {
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	out := make([]Record, len(recs))
	var wg sync.WaitGroup
	for i, rec := range recs {
		wg.Go(func() { out[i] = checkOne(ctx, r, rec) })
	}
	wg.Wait()
	return out
}

func checkOne(ctx context.Context, r Resolver, rec Record) Record {
	rec.Status, rec.Found, rec.Reason, rec.Note = "", "", "", ""
	want := canonical(rec.Value)
	ans, err := r.LookupCNAME(ctx, rec.Host)
	if err == nil && ans.Rcode != dns.RcodeSuccess && ans.Rcode != dns.RcodeNameError {
		err = fmt.Errorf("the resolver answered %s", rcodeName(ans.Rcode))
	}
	switch {
	case err != nil:
		rec.Status = StatusError
		rec.Reason = fmt.Sprintf("The DNS lookup of %s failed temporarily (%v). This is not counted as a missing record; the check will be retried.", rec.Host, err)
	case ans.CNAME != "" && canonical(ans.CNAME) == want:
		rec.Status, rec.Found = StatusOK, want
		if len(rec.Want) > 0 {
			return followTarget(ctx, r, rec)
		}
	case ans.CNAME != "":
		rec.Status, rec.Found = StatusMismatch, canonical(ans.CNAME)
		rec.Reason = wrongTargetReason(rec, rec.Found)
	default:
		return noCNAME(ctx, r, rec, ans)
	}
	return rec
}

// noCNAME judges a host that has no CNAME: flattened (when Want says what
// to look for), something else in its place, or nothing.
func noCNAME(ctx context.Context, r Resolver, rec Record, ans Answer) Record {
	if len(rec.Want) > 0 && ans.Rcode == dns.RcodeSuccess {
		if out, decided := checkFlattened(ctx, r, rec, ans); decided {
			return out
		}
	}
	if len(ans.Other) > 0 {
		rec.Status, rec.Found = StatusMismatch, strings.Join(ans.Other, ", ")
		rec.Reason = otherRecordReason(rec, ans.Other)
		return rec
	}
	rec.Status = StatusMissing
	rec.Reason = missingReason(ctx, r, rec, ans.Rcode)
	return rec
}

func rcodeName(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return fmt.Sprintf("rcode %d", rcode)
}

func wrongTargetReason(rec Record, found string) string {
	want := canonical(rec.Value)
	s := fmt.Sprintf("%s is a CNAME to %s, but it must point to %s. Change the record's value to %s.", rec.Host, found, want, want)
	switch {
	case strings.HasPrefix(found, want+"."):
		s += fmt.Sprintf(" Your DNS provider took the value as a name inside your zone and appended the domain: enter it with a final dot, as \"%s.\".", want)
	case sameExceptToken(rec.Purpose, found, want):
		s += " It points to the value of an earlier registration: the records change when a domain is deleted and added again."
	}
	return s
}

// sameExceptToken reports whether two provider-zone names differ only in the
// registration token (label 1 of SEL.T.dkim.Z, label 0 of T.bounce.Z and
// T.dmarc.Z).
func sameExceptToken(p Purpose, found, want string) bool {
	tok := 0
	switch p {
	case PurposeDKIM:
		tok = 1
	case PurposeReturnPath, PurposeDMARC:
	default:
		return false
	}
	f, w := strings.Split(found, "."), strings.Split(want, ".")
	if len(f) != len(w) || len(w) <= tok {
		return false
	}
	f = append(f[:tok:tok], f[tok+1:]...)
	w = append(w[:tok:tok], w[tok+1:]...)
	return strings.Join(f, ".") == strings.Join(w, ".")
}

func otherRecordReason(rec Record, other []string) string {
	want := canonical(rec.Value)
	found := strings.Join(other, ", ")
	for _, o := range other {
		if strings.HasPrefix(o, "A ") || strings.HasPrefix(o, "AAAA ") {
			return fmt.Sprintf("%s answers with an address (%s) instead of a CNAME: your DNS provider is proxying the record or flattening the CNAME. Turn off proxying / CNAME flattening for %s so that it is served as a CNAME to %s.", rec.Host, found, rec.Host, want)
		}
	}
	for _, o := range other {
		if strings.HasPrefix(o, "TXT ") {
			s := fmt.Sprintf("%s has a TXT record (%s) where a CNAME belongs. Delete the TXT record and add a record of type CNAME with the value %s; a name with a CNAME can hold no other record.", rec.Host, found, want)
			switch {
			case rec.Purpose == PurposeDMARC && strings.Contains(o, "v=DMARC1"):
				s += " sendergate then publishes your DMARC policy through the CNAME."
			case rec.Purpose == PurposeDKIM && strings.Contains(o, "v=DKIM1"):
				s += " sendergate then publishes the DKIM key through the CNAME."
			}
			return s
		}
	}
	return fmt.Sprintf("%s has %s but no CNAME. Replace it with a CNAME record to %s; a name with a CNAME can hold no other record.", rec.Host, found, want)
}

func missingReason(ctx context.Context, r Resolver, rec Record, rcode int) string {
	want := canonical(rec.Value)
	if dbl, ans, ok := appendedTwice(ctx, r, rec); ok {
		enter := strings.TrimSuffix(rec.Host, "."+strings.TrimPrefix(dbl, rec.Host+"."))
		s := fmt.Sprintf("There is no record at %s, but there is a CNAME at %s: your DNS provider appended the domain. Enter only %s as the record's name.", rec.Host, dbl, enter)
		if ans != want {
			s += fmt.Sprintf(" Its value is %s; it must be %s.", ans, want)
		}
		return s
	}
	what := "the name has no CNAME record"
	if rcode == dns.RcodeNameError {
		what = "the name does not exist"
	}
	return fmt.Sprintf("No CNAME found at %s (%s). Add a record of type CNAME with the name %s and the value %s; a new record may take up to its TTL to become visible.", rec.Host, what, rec.Host, want)
}

// appendedTwice looks for the record under HOST.P for each parent P of the
// customer's domain with two labels or more, the name that results when the
// full host is entered into a provider that appends its zone. It returns
// that name and the CNAME found there.
func appendedTwice(ctx context.Context, r Resolver, rec Record) (string, string, bool) {
	d := domainOf(rec)
	for n := 0; n < 4 && strings.Count(d, ".") >= 1; n++ {
		name := rec.Host + "." + d
		if len(name) <= 253 {
			ans, err := r.LookupCNAME(ctx, name)
			if err == nil && ans.CNAME != "" {
				return name, canonical(ans.CNAME), true
			}
		}
		d = d[strings.IndexByte(d, '.')+1:]
	}
	return "", "", false
}

// domainOf recovers the customer's domain from a record's host name.
func domainOf(rec Record) string {
	h := canonical(rec.Host)
	switch rec.Purpose {
	case PurposeDKIM:
		if i := strings.Index(h, "._domainkey."); i >= 0 {
			return h[i+len("._domainkey."):]
		}
	case PurposeDMARC:
		if d, ok := strings.CutPrefix(h, "_dmarc."); ok {
			return d
		}
	}
	_, d, _ := strings.Cut(h, ".")
	return d
}

// Served is one record sendergate serves at a CNAME's target in the
// provider zone. Type is "TXT", "MX", "A" or "AAAA"; Value is the TXT text
// with its strings joined, the MX as "PREF HOST" (HOST without the
// trailing dot), or the address.
type Served struct {
	Type  string
	Value string
}

// ExpectServed returns a copy of recs in which each record's Want holds the
// TXT, MX, A and AAAA records of served (provider-zone records, as
// ZoneRecords builds them) owned by the record's Value. A record whose
// target serves none of them (tracking without dns.tracking_address) gets
// no Want and is checked up to its CNAME.
func ExpectServed(recs []Record, served []dns.RR) []Record {
	byName := map[string][]Served{}
	for _, rr := range served {
		typ := dns.TypeToString[rr.Header().Rrtype]
		if _, ok := lookupTypes[typ]; !ok {
			continue
		}
		name := canonical(rr.Header().Name)
		byName[name] = append(byName[name], Served{Type: typ, Value: servedValue(rr)})
	}
	out := make([]Record, len(recs))
	for i, rec := range recs {
		rec.Want = slices.Clone(byName[canonical(rec.Value)])
		out[i] = rec
	}
	return out
}

// followTarget looks up Want at the target of a right CNAME, through the
// same resolvers, as a receiver finds it. A definite miss of one type wins
// over a transient error of another, as in OutcomeOf.
func followTarget(ctx context.Context, r Resolver, rec Record) Record {
	target := canonical(rec.Value)
	types, want := wanted(rec.Want)
	failed := "" // the reason of the first transient error
	for _, typ := range types {
		d, err := lookup(ctx, r, target, typ)
		got := normalValues(typ, d.Values)
		switch {
		case err != nil:
			if failed == "" {
				failed = targetErrorReason(rec, typ, err)
			}
		case d.Rcode == dns.RcodeNameError:
			return targetMismatch(rec, "NXDOMAIN", delegationReason(rec, typ))
		case len(got) == 0:
			return targetMismatch(rec, "no "+typ+" record", noDataReason(rec, typ))
		case !sameSet(got, want[typ]):
			return targetMismatch(rec, strings.Join(describeValues(typ, got), ", "), staleReason(rec, typ, want[typ]))
		}
	}
	if failed != "" {
		rec.Status, rec.Reason = StatusError, failed
	}
	return rec
}

// lookup is Resolver.Lookup with any rcode other than NOERROR and NXDOMAIN
// turned into an error, as checkOne does for the CNAME.
func lookup(ctx context.Context, r Resolver, name, typ string) (Data, error) {
	d, err := r.Lookup(ctx, name, typ)
	if err == nil && d.Rcode != dns.RcodeSuccess && d.Rcode != dns.RcodeNameError {
		err = fmt.Errorf("the resolver answered %s", rcodeName(d.Rcode))
	}
	return d, err
}

func targetMismatch(rec Record, found, reason string) Record {
	rec.Status, rec.Found, rec.Reason = StatusMismatch, canonical(rec.Value)+" -> "+found, reason
	return rec
}

func delegationReason(rec Record, typ string) string {
	z := providerZone(rec)
	return fmt.Sprintf("The CNAME at %s is right, but the provider zone does not answer for %s yet (NXDOMAIN), so receivers find no %s through it. Check that %s is delegated to sendergate's name servers (NS records for %s in its parent zone); if it is, the record has not reached them yet and a later check will find it.",
		rec.Host, canonical(rec.Value), servedWhat(rec.Purpose, typ), z, z)
}

func noDataReason(rec Record, typ string) string {
	z := providerZone(rec)
	return fmt.Sprintf("The CNAME at %s is right, but the provider zone serves no %s record at %s, so receivers find no %s through it. It is still propagating, or %s is not delegated to sendergate's name servers: check the NS records for %s in its parent zone.",
		rec.Host, typ, canonical(rec.Value), servedWhat(rec.Purpose, typ), z, z)
}

func staleReason(rec Record, typ string, want []string) string {
	serves := ""
	if v := strings.Join(describeValues(typ, want), ", "); len(v) <= 120 {
		serves = "; sendergate serves " + v
	}
	return fmt.Sprintf("The CNAME at %s is right, but the provider zone serves a different %s at %s (see found)%s. It is still propagating or the zone is stale: check again in a few minutes, and if it persists, check that every name server of %s serves the current zone (a secondary may have missed a zone transfer).",
		rec.Host, servedWhat(rec.Purpose, typ), canonical(rec.Value), serves, providerZone(rec))
}

func targetErrorReason(rec Record, typ string, err error) string {
	return fmt.Sprintf("The CNAME at %s is right, but the DNS lookup of %s at %s failed temporarily (%v). This is not counted as a missing record; the check will be retried. If it keeps failing, check that %s is delegated to sendergate's name servers and that they answer.",
		rec.Host, typ, canonical(rec.Value), err, providerZone(rec))
}

// checkFlattened looks for Want at a host that has no CNAME: a DNS provider
// that flattens CNAMEs answers with the target's data. decided is false when
// the host serves none of Want's types; it is then judged as without Want.
func checkFlattened(ctx context.Context, r Resolver, rec Record, ans Answer) (out Record, decided bool) {
	types, want := wanted(rec.Want)
	var found []string // the host's records of Want's types
	match := true
	for _, typ := range types {
		d, err := lookup(ctx, r, rec.Host, typ)
		if err != nil {
			rec.Status = StatusError
			rec.Reason = fmt.Sprintf("%s has no CNAME, and the DNS lookup of its %s records failed temporarily (%v), so it is not known whether it is a flattened CNAME. This is not counted as a missing record; the check will be retried.", rec.Host, typ, err)
			return rec, true
		}
		got := normalValues(typ, d.Values)
		found = append(found, describeValues(typ, got)...)
		match = match && sameSet(got, want[typ])
	}
	if len(found) == 0 {
		return rec, false
	}
	if match {
		rec.Status, rec.Found = StatusOK, strings.Join(found, ", ")
		rec.Note = fmt.Sprintf("%s is flattened by your DNS provider (it answers with the target's data instead of a CNAME to %s): it verifies now, but will not follow future changes of the target (%s). Turn off CNAME flattening / proxying for %s so that it is served as a CNAME.",
			rec.Host, canonical(rec.Value), targetChange(rec.Purpose), rec.Host)
		rec.Reason = rec.Note
		return rec, true
	}
	other := slices.Clone(ans.Other)
	for _, f := range found {
		if !slices.Contains(other, f) {
			other = append(other, f)
		}
	}
	rec.Status, rec.Found = StatusMismatch, strings.Join(other, ", ")
	rec.Reason = otherRecordReason(rec, other) + fmt.Sprintf(" It does not answer with exactly the records sendergate serves at %s either, so it is not a flattened copy of the CNAME's target.", canonical(rec.Value))
	return rec, true
}

// servedWhat names what a receiver looks for at a record's target.
func servedWhat(p Purpose, typ string) string {
	switch {
	case p == PurposeDKIM:
		return "DKIM key"
	case p == PurposeReturnPath && typ == "MX":
		return "bounce MX record"
	case p == PurposeReturnPath && typ == "TXT":
		return "SPF record"
	case p == PurposeDMARC:
		return "DMARC record"
	case p == PurposeTracking:
		return "tracking address"
	}
	return typ + " record"
}

// targetChange names the changes of a target a flattened copy misses.
func targetChange(p Purpose) string {
	switch p {
	case PurposeDKIM:
		return "key rotation"
	case PurposeReturnPath:
		return "a change of the bounce MX or SPF record"
	case PurposeDMARC:
		return "a change of the DMARC policy"
	case PurposeTracking:
		return "a change of the tracking address"
	}
	return "any change"
}

// providerZone recovers the provider zone Z from a record's value:
// SEL.T.dkim.Z, T.bounce.Z, T.dmarc.Z or track.Z.
func providerZone(rec Record) string {
	labels := map[Purpose]int{PurposeDKIM: 3, PurposeReturnPath: 2, PurposeDMARC: 2, PurposeTracking: 1}[rec.Purpose]
	v := canonical(rec.Value)
	for range labels {
		_, rest, ok := strings.Cut(v, ".")
		if !ok {
			break
		}
		v = rest
	}
	return v
}

// wanted groups Want by type, in the order the types first appear, with
// values normalized for comparison.
func wanted(want []Served) ([]string, map[string][]string) {
	var types []string
	by := map[string][]string{}
	for _, w := range want {
		if _, seen := by[w.Type]; !seen {
			types = append(types, w.Type)
		}
		by[w.Type] = append(by[w.Type], normalValue(w.Type, w.Value))
	}
	return types, by
}

func normalValues(typ string, vs []string) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, normalValue(typ, v))
	}
	return out
}

// normalValue makes equal data compare equal: an MX host's case and final
// dot, an address's spelling. TXT text compares exactly.
func normalValue(typ, v string) string {
	switch typ {
	case "MX":
		if pref, host, ok := strings.Cut(strings.TrimSpace(v), " "); ok {
			return pref + " " + canonical(strings.TrimSpace(host))
		}
	case "A", "AAAA":
		if ip, err := netip.ParseAddr(v); err == nil {
			return ip.String()
		}
	}
	return v
}

// sameSet reports whether a and b hold the same values in any order: an
// RRset has no order (RFC 2181 5).
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// describeValues writes values of type typ as Answer.Other does.
func describeValues(typ string, vs []string) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if typ == "TXT" {
			out = append(out, fmt.Sprintf("TXT %q", v))
		} else {
			out = append(out, typ+" "+v)
		}
	}
	return out
}
