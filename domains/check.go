package domains

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// CheckTimeout bounds a whole Check unless ctx has an earlier deadline.
const CheckTimeout = 20 * time.Second

// Check looks up every record in parallel and returns a copy of recs with
// Status, Found and Reason filled in: "ok", "missing" (NXDOMAIN or no
// data), "mismatch" (something else is there; Found says what) or "error"
// (a transient failure that must not count as a miss). Names compare
// without regard to case or a trailing dot.
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
	rec.Status, rec.Found, rec.Reason = "", "", ""
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
	case ans.CNAME != "":
		rec.Status, rec.Found = StatusMismatch, canonical(ans.CNAME)
		rec.Reason = wrongTargetReason(rec, rec.Found)
	case len(ans.Other) > 0:
		rec.Status, rec.Found = StatusMismatch, strings.Join(ans.Other, ", ")
		rec.Reason = otherRecordReason(rec, ans.Other)
	default:
		rec.Status = StatusMissing
		rec.Reason = missingReason(ctx, r, rec, ans.Rcode)
	}
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
