package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sendergate/sendergate/internal/bindtest"
)

// TestBINDSecondaryFollowsTheAPI: a real BIND 9 secondary configured as
// docs/dns.md shows (allow_transfer, notify, glue for the in-zone name
// server and bounce MX) loads the zone, passes named-checkzone, and
// answers a new domain's DKIM TXT within 5 s of the API call that added it
// (its SOA refresh is an hour: only NOTIFY and IXFR get it there).
func TestBINDSecondaryFollowsTheAPI(t *testing.T) {
	t.Parallel()
	bindtest.Tool(t, "named")
	bindtest.Tool(t, "named-checkzone")
	namedPort, dnsPort := freePort(t), freePort(t)
	in := startDaemon(t, daemonOpts{dnsAddr: fmt.Sprintf("127.0.0.1:%d", dnsPort), extra: fmt.Sprintf(`allow_transfer = ["127.0.0.1"]
notify = ["127.0.0.1:%d"]
nameserver_addresses = {"ns1.sg.localhost" = ["127.0.0.1"]}
bounce_mx_addresses = ["127.0.0.1"]
soa_refresh = "1h"
`, namedPort)})
	sec := bindtest.Start(t, "sg.localhost", namedPort, dnsPort)
	key := in.adminKey(t)
	if code := in.call(t, key, "POST", "/v1/orgs", `{"name":"acme"}`, nil); code != 201 {
		t.Fatalf("create org: %d", code)
	}
	waitSerial := func(what string, ok func(serial uint32) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if r := sec.Ask("sg.localhost", dns.TypeSOA); r != nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
				if ok(r.Answer[0].(*dns.SOA).Serial) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("secondary: %s", what)
			}
		}
	}
	waitSerial("never loaded the zone", func(uint32) bool { return true })
	sec.CheckZone(t, "sg.localhost")

	var dom struct {
		Records []struct{ Purpose, Value string }
	}
	start := time.Now()
	if code := in.call(t, key, "POST", "/v1/orgs/acme/domains", `{"name":"news.example.com","dkim_algorithm":"ed25519"}`, &dom); code != 201 {
		t.Fatalf("add domain: %d", code)
	}
	var dkimTarget string
	for _, r := range dom.Records {
		if r.Purpose == "dkim" {
			dkimTarget = r.Value
		}
	}
	for {
		r := sec.Ask(dkimTarget, dns.TypeTXT)
		if r != nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			if got := strings.Join(r.Answer[0].(*dns.TXT).Txt, ""); !strings.HasPrefix(got, "v=DKIM1; k=ed25519; p=") {
				t.Fatalf("secondary serves %q at %s", got, dkimTarget)
			}
			t.Logf("secondary answered the new DKIM TXT %v after the API call", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("secondary does not answer %s TXT 5 s after the API call: %v", dkimTarget, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sec.CheckZone(t, "sg.localhost")
}
