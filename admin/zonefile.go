package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/store"
)

// ZonefileTTL is the TTL written on each line of a domain's zone-file
// snippet: an hour, what DNS providers commonly default to.
const ZonefileTTL = 3600

// domainZonefile answers GET /v1/orgs/{org}/domains/{domain}/zonefile with
// the records to publish as zone-file lines (RFC 1035 5.1): absolute owner
// names and targets, an explicit TTL and class, no $ORIGIN, so that the
// DNS-provider imports that take BIND-style zone files accept the text as
// it is. Comments (";") name each record's purpose.
func (s *Server) domainZonefile(w http.ResponseWriter, r *http.Request, p principal, org store.Org) {
	name := domainName(r)
	d, err := s.opts.Store.DomainByName(r.Context(), org.ID, name)
	if err != nil {
		s.fail(w, r, domainSubject(name), err)
		return
	}
	var recs []domains.Record
	if err := json.Unmarshal([]byte(d.Records), &recs); err != nil {
		s.internal(w, r, fmt.Errorf("domain %s: records: %w", d.Name, err))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`inline; filename="%s.zone"`, d.Name))
	w.WriteHeader(http.StatusOK)
	_ = WriteZonefile(w, d.Name, recs)
}

// WriteZonefile writes the records of domain name as zone-file lines, one
// per record, after a comment line naming the domain. A domain with
// nothing to publish (a sandbox domain, served by sendergate itself) gets
// the comment alone.
func WriteZonefile(w io.Writer, name string, recs []domains.Record) error {
	var b strings.Builder
	if len(recs) == 0 {
		fmt.Fprintf(&b, "; %s: nothing to publish (sendergate serves this domain itself)\n", name)
	} else {
		fmt.Fprintf(&b, "; %s: the records to publish at the domain's DNS provider\n", name)
	}
	for _, rec := range recs {
		fmt.Fprintf(&b, "%s\t%d\tIN\t%s\t%s\t; %s\n", fqdn(rec.Host), ZonefileTTL, rec.Type, fqdn(rec.Value), rec.Purpose)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fqdn writes a name absolute (with its trailing dot), so that it means
// the same under any $ORIGIN.
func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}
