package zone

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sendergate/sendergate/internal/bindtest"
)

// TestBINDSecondary runs a real BIND 9 secondary of the zone: it must load
// the zone (named-checkzone passes on its copy) and follow a change within
// seconds, by NOTIFY and IXFR, although the SOA refresh is an hour.
func TestBINDSecondary(t *testing.T) {
	bindtest.Tool(t, "named-checkzone")
	bindtest.Tool(t, "named")
	namedPort := bindtest.FreePort(t)
	s, err := New(Config{
		Zone: testZone, Nameservers: []string{"ns1.sg.localhost"},
		AllowTransfer:       []string{"127.0.0.1"},
		Notify:              []string{fmt.Sprintf("127.0.0.1:%d", namedPort)},
		NameserverAddresses: map[string][]string{"ns1.sg.localhost": {"127.0.0.1"}},
		BounceMX:            "mx.sg.localhost", BounceMXAddresses: []string{"127.0.0.1", "::1"},
		Refresh: time.Hour, // without NOTIFY the secondary would not look again within the test
	})
	if err != nil {
		t.Fatal(err)
	}
	s.notifyBackoff = 100 * time.Millisecond // named may still be starting when the first NOTIFY goes out
	// The records the daemon generates: no address for ns1 or mx among them,
	// those come from the configuration.
	records := func(extra ...dns.RR) []dns.RR {
		var rrs []dns.RR
		for _, rr := range testRecords() {
			if rr.Header().Name != nsName {
				rrs = append(rrs, rr)
			}
		}
		return append(rrs, extra...)
	}
	s.Update(1, records())
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	sec := bindtest.Start(t, "sg.localhost", namedPort, s.TCPAddr().(*net.TCPAddr).Port)

	eventually(t, "named to load the zone by AXFR", func() bool {
		r := sec.Ask("sg.localhost.", dns.TypeSOA)
		return r != nil && r.Rcode == dns.RcodeSuccess && r.Authoritative && len(r.Answer) == 1 &&
			r.Answer[0].(*dns.SOA).Serial == s.Serial()
	})
	sec.CheckZone(t, "sg.localhost")

	const newDKIM = "sg1.newdomaina.dkim.sg.localhost."
	if r := sec.Ask(newDKIM, dns.TypeTXT); r == nil || r.Rcode != dns.RcodeNameError {
		t.Fatalf("secondary answers the new name before the change: %v", r)
	}
	ixfrBefore := s.metrics.ixfr.Load()
	sentBefore := s.metrics.notifySent.Load()
	serial := s.Update(s.Serial()+1, records(TXT(newDKIM, 0, "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")))
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := sec.Ask(newDKIM, dns.TypeTXT)
		if r != nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			if got := strings.Join(r.Answer[0].(*dns.TXT).Txt, ""); !strings.HasPrefix(got, "v=DKIM1; k=ed25519; p=") {
				t.Fatalf("secondary serves %q", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("secondary does not answer the new DKIM TXT 5 s after the change (serial %d): %v", serial, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.metrics.notifySent.Load() <= sentBefore {
		t.Error("the secondary followed without an acknowledged NOTIFY")
	}
	if s.metrics.ixfr.Load() <= ixfrBefore {
		t.Errorf("the secondary did not get the change by an incremental IXFR; named log:\n%s", sec.Log.String())
	}
}
