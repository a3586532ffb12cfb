package main

import (
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/sendergate/sendergate/internal/dnstest"
)

// domainView is the part of the Domain output these tests read.
type domainView struct {
	Status  string
	Records []struct {
		Purpose, Host, Value, Status, Reason, Note string
	}
}

// TestVerificationFollowsThrough: with right CNAMEs but a provider zone
// the resolvers cannot reach (no delegation), the domain stays pending and
// the reason says so; once the zone is reachable it verifies. A DKIM
// record flattened by the DNS provider (the target's TXT at the host, no
// CNAME) verifies, with a note that it will not follow key changes.
func TestVerificationFollowsThrough(t *testing.T) {
	t.Parallel()
	cust := dnstest.NewServer(t)
	in := startDaemon(t, daemonOpts{resolvers: []string{cust.Addr()}})
	key := in.adminKey(t)
	if code := in.call(t, key, "POST", "/v1/orgs", `{"name":"acme"}`, nil); code != 201 {
		t.Fatalf("create org: %d", code)
	}
	var dom domainView
	if code := in.call(t, key, "POST", "/v1/orgs/acme/domains", `{"name":"lame.example"}`, &dom); code != 201 {
		t.Fatalf("add lame.example: %d", code)
	}
	for _, r := range dom.Records {
		cust.PublishCNAME(r.Host, r.Value)
	}
	in.call(t, key, "POST", "/v1/orgs/acme/domains/lame.example/verify", "", &dom)
	if dom.Status != "pending" {
		t.Fatalf("CNAMEs right, provider zone unreachable: status %s, want pending", dom.Status)
	}
	for _, r := range dom.Records {
		if r.Status == "ok" || !strings.Contains(r.Reason, "provider zone does not answer") {
			t.Errorf("%s record: status %s, reason %q; want not ok, naming the provider zone", r.Purpose, r.Status, r.Reason)
		}
	}

	cust.Delegate("sg.localhost", in.dns)
	in.call(t, key, "POST", "/v1/orgs/acme/domains/lame.example/verify", "", &dom)
	if dom.Status != "verified" {
		t.Fatalf("after the zone became reachable: status %s, want verified (%+v)", dom.Status, dom.Records)
	}

	// flat.example's DNS provider flattens the DKIM CNAME: the host
	// answers with the target's TXT.
	if code := in.call(t, key, "POST", "/v1/orgs/acme/domains", `{"name":"flat.example"}`, &dom); code != 201 {
		t.Fatalf("add flat.example: %d", code)
	}
	for _, r := range dom.Records {
		if r.Purpose != "dkim" {
			cust.PublishCNAME(r.Host, r.Value)
			continue
		}
		for _, txt := range zoneTXT(t, in.dns, r.Value) {
			cust.Add(t, r.Host+" 300 IN TXT "+txt)
		}
	}
	in.call(t, key, "POST", "/v1/orgs/acme/domains/flat.example/verify", "", &dom)
	if dom.Status != "verified" {
		t.Fatalf("flattened DKIM record: status %s, want verified (%+v)", dom.Status, dom.Records)
	}
	for _, r := range dom.Records {
		if r.Purpose == "dkim" && (r.Status != "ok" || !strings.Contains(r.Note, "flattened")) {
			t.Errorf("flattened DKIM record: status %s, note %q; want ok with a note about flattening", r.Status, r.Note)
		}
	}
}

// zoneTXT returns the TXT records at name on the daemon's zone server, in
// zone-file syntax (quoted strings).
func zoneTXT(t *testing.T, server, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	c := &dns.Client{Net: "tcp"}
	r, _, err := c.Exchange(m, server)
	if err != nil || len(r.Answer) == 0 {
		t.Fatalf("TXT %s at the zone server: %v %v", name, r, err)
	}
	var out []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			quoted := make([]string, len(txt.Txt))
			for i, s := range txt.Txt {
				quoted[i] = `"` + s + `"`
			}
			out = append(out, strings.Join(quoted, " "))
		}
	}
	return out
}
