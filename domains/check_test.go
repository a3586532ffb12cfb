package domains

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testDNS is a real DNS server on 127.0.0.1 (UDP and TCP on one port) that
// plays the customer's recursive resolver: it answers from a record set the
// test edits, never chasing CNAMEs.
type testDNS struct {
	addr string

	mu       sync.Mutex
	rrs      map[string][]dns.RR // by lowercase FQDN
	servfail map[string]bool     // names answered SERVFAIL
	truncate map[string]bool     // names answered truncated over UDP
	sawEDNS  bool
	sawTCP   bool
}

func newTestDNS(t *testing.T) *testDNS {
	t.Helper()
	z := &testDNS{}
	z.reset(t, nil, nil, nil)
	pc, l := listenUDPAndTCP(t)
	z.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: z}, {Listener: l, Handler: z}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return z
}

func listenUDPAndTCP(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l
		}
		_ = pc.Close()
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil, nil
}

// reset replaces the served data: rrs in zone file syntax, and names to
// answer with SERVFAIL or truncated over UDP.
func (z *testDNS) reset(t *testing.T, rrs, servfail, truncate []string) {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	z.rrs, z.servfail, z.truncate = map[string][]dns.RR{}, map[string]bool{}, map[string]bool{}
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("bad test record %q: %v", s, err)
		}
		name := strings.ToLower(rr.Header().Name)
		z.rrs[name] = append(z.rrs[name], rr)
	}
	for _, n := range servfail {
		z.servfail[dns.Fqdn(n)] = true
	}
	for _, n := range truncate {
		z.truncate[dns.Fqdn(n)] = true
	}
}

func (z *testDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	z.mu.Lock()
	defer z.mu.Unlock()
	resp := new(dns.Msg)
	resp.SetReply(req)
	if req.IsEdns0() != nil {
		z.sawEDNS = true
		resp.SetEdns0(1232, false)
	}
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	z.sawTCP = z.sawTCP || !udp
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	rrs, exists := z.rrs[name]
	switch {
	case z.servfail[name]:
		resp.Rcode = dns.RcodeServerFailure
	case z.truncate[name] && udp:
		resp.Truncated = true
	case !exists:
		resp.Rcode = dns.RcodeNameError
	default:
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype || rr.Header().Rrtype == dns.TypeCNAME {
				resp.Answer = append(resp.Answer, rr)
			}
		}
	}
	_ = w.WriteMsg(resp)
}

const checkToken = "tok0123456789abc"

func checkInput() Input {
	return Input{Name: "example.com", ReturnPath: "mailing", Tracking: "click", DKIMSelector: "sg1",
		DMARC: &DMARC{Policy: "none"}}
}

// okRRs publishes every record of recs correctly.
func okRRs(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Host+". 300 IN CNAME "+r.Value+".")
	}
	return out
}

func newTestResolver(t *testing.T, addr string) *DNSResolver {
	t.Helper()
	r, err := NewDNSResolver([]string{addr}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheckAllOK(t *testing.T) {
	z := newTestDNS(t)
	recs := Records(checkInput(), checkToken, testZone)
	z.reset(t, okRRs(recs), nil, nil)
	got := Check(context.Background(), newTestResolver(t, z.addr), recs)
	if len(got) != 4 {
		t.Fatalf("got %d records, want 4", len(got))
	}
	for i, r := range got {
		if r.Status != StatusOK || r.Found != recs[i].Value || r.Reason != "" {
			t.Errorf("%s: status %q found %q reason %q, want ok", r.Host, r.Status, r.Found, r.Reason)
		}
		if r.Host != recs[i].Host || r.Value != recs[i].Value || r.Purpose != recs[i].Purpose {
			t.Errorf("record %d changed its name or value: %+v", i, r)
		}
	}
	if recs[0].Status != StatusUnchecked {
		t.Errorf("Check modified its input: %+v", recs[0])
	}
	if OutcomeOf(got) != AllOK {
		t.Errorf("OutcomeOf = %v, want all-ok", OutcomeOf(got))
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if !z.sawEDNS {
		t.Error("queries carried no EDNS0 OPT record")
	}
}

func TestCheckRecord(t *testing.T) {
	z := newTestDNS(t)
	res := newTestResolver(t, z.addr)
	recs := Records(checkInput(), checkToken, testZone)
	dkimValue := "sg1." + checkToken + ".dkim." + testZone
	tests := []struct {
		name       string
		rrs        []string
		servfail   []string
		truncate   []string
		purpose    Purpose // the record inspected
		wantStatus string
		wantFound  string
		wantReason []string // substrings of Reason
	}{
		{name: "missing", purpose: PurposeDKIM, wantStatus: StatusMissing,
			wantReason: []string{"sg1._domainkey.example.com", "does not exist", "CNAME", dkimValue}},
		{name: "no data at an existing name", purpose: PurposeReturnPath, wantStatus: StatusMissing,
			rrs:        []string{"mailing.example.com. 300 IN MX 10 mx.example.com."},
			wantReason: []string{"has no CNAME record", checkToken + ".bounce." + testZone}},
		{name: "wrong target", purpose: PurposeDKIM, wantStatus: StatusMismatch,
			rrs:        []string{"sg1._domainkey.example.com. 300 IN CNAME sg1.dkim.other-esp.example."},
			wantFound:  "sg1.dkim.other-esp.example",
			wantReason: []string{"sg1.dkim.other-esp.example", "must point to " + dkimValue}},
		{name: "old token", purpose: PurposeDKIM, wantStatus: StatusMismatch,
			rrs:        []string{"sg1._domainkey.example.com. 300 IN CNAME sg1.oldtoken0000000.dkim." + testZone + "."},
			wantFound:  "sg1.oldtoken0000000.dkim." + testZone,
			wantReason: []string{"earlier registration", dkimValue}},
		{name: "value taken as relative", purpose: PurposeDKIM, wantStatus: StatusMismatch,
			rrs:        []string{"sg1._domainkey.example.com. 300 IN CNAME " + dkimValue + ".example.com."},
			wantFound:  dkimValue + ".example.com",
			wantReason: []string{"final dot"}},
		{name: "zone appended twice", purpose: PurposeDKIM, wantStatus: StatusMissing,
			rrs:        []string{"sg1._domainkey.example.com.example.com. 300 IN CNAME " + dkimValue + "."},
			wantReason: []string{"sg1._domainkey.example.com.example.com", "appended the domain", "Enter only sg1._domainkey as"}},
		{name: "A instead of CNAME", purpose: PurposeTracking, wantStatus: StatusMismatch,
			rrs:        []string{"click.example.com. 300 IN A 192.0.2.10", "click.example.com. 300 IN AAAA 2001:db8::10"},
			wantFound:  "A 192.0.2.10, AAAA 2001:db8::10",
			wantReason: []string{"turn off proxying / CNAME flattening", "track." + testZone}},
		{name: "TXT instead of CNAME", purpose: PurposeDMARC, wantStatus: StatusMismatch,
			rrs:        []string{`_dmarc.example.com. 300 IN TXT "v=DMARC1; p=none"`},
			wantFound:  `TXT "v=DMARC1; p=none"`,
			wantReason: []string{"TXT record", "Delete the TXT record", "DMARC policy"}},
		{name: "SERVFAIL is an error, not a miss", purpose: PurposeDKIM, wantStatus: StatusError,
			servfail:   []string{"sg1._domainkey.example.com"},
			wantReason: []string{"SERVFAIL", "not counted as a missing record", "retried"}},
		{name: "case and trailing dot do not matter", purpose: PurposeDKIM, wantStatus: StatusOK,
			rrs:       []string{"SG1._DomainKey.Example.COM. 300 IN CNAME " + strings.ToUpper(dkimValue) + "."},
			wantFound: dkimValue},
		{name: "truncated over UDP, answered over TCP", purpose: PurposeDKIM, wantStatus: StatusOK,
			rrs:       []string{"sg1._domainkey.example.com. 300 IN CNAME " + dkimValue + "."},
			truncate:  []string{"sg1._domainkey.example.com"},
			wantFound: dkimValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z.reset(t, tt.rrs, tt.servfail, tt.truncate)
			got := recordFor(t, Check(context.Background(), res, recs), tt.purpose)
			t.Logf("reason: %s", got.Reason)
			if got.Status != tt.wantStatus || got.Found != tt.wantFound {
				t.Fatalf("status %q found %q, want %q %q (reason %q)", got.Status, got.Found, tt.wantStatus, tt.wantFound, got.Reason)
			}
			for _, s := range tt.wantReason {
				if !strings.Contains(strings.ToLower(got.Reason), strings.ToLower(s)) {
					t.Errorf("reason %q does not mention %q", got.Reason, s)
				}
			}
		})
	}
}

func recordFor(t *testing.T, recs []Record, p Purpose) Record {
	t.Helper()
	for _, r := range recs {
		if r.Purpose == p {
			return r
		}
	}
	t.Fatalf("no %s record in %+v", p, recs)
	return Record{}
}

func TestCheckTruncationUsesTCP(t *testing.T) {
	z := newTestDNS(t)
	recs := Records(Input{Name: "example.com", DKIMSelector: "sg1"}, checkToken, testZone)
	z.reset(t, okRRs(recs), nil, []string{recs[0].Host})
	got := Check(context.Background(), newTestResolver(t, z.addr), recs)
	z.mu.Lock()
	defer z.mu.Unlock()
	if got[0].Status != StatusOK || !z.sawTCP {
		t.Fatalf("status %q, TCP used %v; want ok over TCP", got[0].Status, z.sawTCP)
	}
}

func TestCheckOutcomes(t *testing.T) {
	z := newTestDNS(t)
	res := newTestResolver(t, z.addr)
	recs := Records(checkInput(), checkToken, testZone)
	all := okRRs(recs)
	tests := []struct {
		name     string
		rrs      []string
		servfail []string
		want     Outcome
	}{
		{name: "all ok", rrs: all, want: AllOK},
		{name: "one SERVFAIL, rest ok", rrs: all, servfail: []string{recs[1].Host}, want: Transient},
		{name: "one missing, one SERVFAIL", rrs: all[2:], servfail: []string{recs[1].Host}, want: Missed},
		{name: "one missing", rrs: all[1:], want: Missed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z.reset(t, tt.rrs, tt.servfail, nil)
			got := Check(context.Background(), res, recs)
			if o := OutcomeOf(got); o != tt.want {
				t.Fatalf("OutcomeOf = %v, want %v (records %+v)", o, tt.want, got)
			}
		})
	}
}

// TestCheckTimeout: a resolver that never answers gives "error", not a miss.
func TestCheckTimeout(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	res, err := NewDNSResolver([]string{pc.LocalAddr().String()}, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	recs := Records(Input{Name: "example.com"}, checkToken, testZone)
	got := Check(context.Background(), res, recs)
	if got[0].Status != StatusError || !strings.Contains(got[0].Reason, "retried") {
		t.Fatalf("status %q reason %q, want a transient error", got[0].Status, got[0].Reason)
	}
	if OutcomeOf(got) != Transient {
		t.Fatalf("OutcomeOf = %v, want transient", OutcomeOf(got))
	}
}

func TestNewDNSResolverAddsPort(t *testing.T) {
	r, err := NewDNSResolver([]string{"192.0.2.53", "[2001:db8::53]", "192.0.2.54:5353"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.53:53", "[2001:db8::53]:53", "192.0.2.54:5353"}
	if strings.Join(r.servers, " ") != strings.Join(want, " ") {
		t.Fatalf("servers = %v, want %v", r.servers, want)
	}
}
