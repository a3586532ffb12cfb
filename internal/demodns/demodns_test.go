package demodns_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/sendergate/sendergate/internal/demodns"
	"github.com/sendergate/sendergate/internal/dnstest"
)

// source is a Source the test edits.
type source struct {
	mu   sync.Mutex
	recs []demodns.Record
	err  error
}

func (s *source) Records(context.Context) ([]demodns.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]demodns.Record(nil), s.recs...), s.err
}

func (s *source) set(recs []demodns.Record, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs, s.err = recs, err
}

const dkimHost = "mkt1._domainkey.newsletter.example.com"
const dkimTarget = "mkt1.tok.dkim.sg.localhost"

// start runs a demo DNS publishing one DKIM CNAME, in front of a provider
// zone (played by dnstest) that serves its target's TXT record.
func start(t *testing.T) (*demodns.Server, *source, *dnstest.Server, string) {
	t.Helper()
	provider := dnstest.NewServer(t)
	provider.Add(t, dkimTarget+". 300 IN TXT \"v=DKIM1; k=rsa; p=abc\"")
	provider.Add(t, "sg.localhost. 300 IN SOA ns1.sg.localhost. h.sg.localhost. 7 3600 600 1209600 300")
	src := &source{recs: []demodns.Record{{Host: dkimHost, Type: "CNAME", Value: dkimTarget + "."}}}
	overrides := filepath.Join(t.TempDir(), "demo-dns.zone")
	s, err := demodns.Start(demodns.Config{Addr: "127.0.0.1:0", Source: src, Zone: "sg.localhost",
		ZoneServer: provider.Addr(), Overrides: overrides})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s, src, provider, overrides
}

func ask(t *testing.T, addr, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	r, _, err := (&dns.Client{Net: network}).Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", dns.TypeToString[qtype], name, network, err)
	}
	return r
}

// answers writes an answer section as "TYPE data" strings.
func answers(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		out = append(out, dns.TypeToString[rr.Header().Rrtype]+" "+strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	return out
}

func TestAnswers(t *testing.T) {
	s, _, _, _ := start(t)
	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		network   string
		wantRcode int
		want      []string
	}{
		{"published CNAME", dkimHost, dns.TypeCNAME, "udp", dns.RcodeSuccess, []string{"CNAME " + dkimTarget + "."}},
		{"published CNAME over TCP", dkimHost, dns.TypeCNAME, "tcp", dns.RcodeSuccess, []string{"CNAME " + dkimTarget + "."}},
		{"TXT follows the CNAME into the provider zone", dkimHost, dns.TypeTXT, "udp", dns.RcodeSuccess,
			[]string{"CNAME " + dkimTarget + ".", `TXT "v=DKIM1; k=rsa; p=abc"`}},
		{"case does not matter", strings.ToUpper(dkimHost), dns.TypeCNAME, "udp", dns.RcodeSuccess, []string{"CNAME " + dkimTarget + "."}},
		{"provider zone forwarded", dkimTarget, dns.TypeTXT, "udp", dns.RcodeSuccess, []string{`TXT "v=DKIM1; k=rsa; p=abc"`}},
		{"unknown name", "other.example.com", dns.TypeCNAME, "udp", dns.RcodeNameError, nil},
		{"empty non-terminal", "newsletter.example.com", dns.TypeA, "udp", dns.RcodeSuccess, nil},
		{"no data of that type at the target", dkimHost, dns.TypeMX, "udp", dns.RcodeSuccess, []string{"CNAME " + dkimTarget + "."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ask(t, s.Addr(), tt.network, tt.qname, tt.qtype)
			if r.Rcode != tt.wantRcode || strings.Join(answers(r), "|") != strings.Join(tt.want, "|") {
				t.Errorf("got %s %q, want %s %q", dns.RcodeToString[r.Rcode], answers(r), dns.RcodeToString[tt.wantRcode], tt.want)
			}
			if !r.RecursionAvailable || r.Authoritative {
				t.Errorf("RA=%v AA=%v, want a resolver's answer (RA, not AA)", r.RecursionAvailable, r.Authoritative)
			}
		})
	}
}

// TestDomainAddedLater checks that a record is served as soon as the
// source lists it, without a restart.
func TestDomainAddedLater(t *testing.T) {
	s, src, _, _ := start(t)
	host := "_dmarc.shop.example.org"
	if r := ask(t, s.Addr(), "udp", host, dns.TypeCNAME); r.Rcode != dns.RcodeNameError {
		t.Fatalf("before: %s", dns.RcodeToString[r.Rcode])
	}
	recs, _ := src.Records(context.Background())
	src.set(append(recs, demodns.Record{Host: host, Type: "CNAME", Value: "tok.dmarc.sg.localhost"}), nil)
	if got := answers(ask(t, s.Addr(), "udp", host, dns.TypeCNAME)); len(got) != 1 || got[0] != "CNAME tok.dmarc.sg.localhost." {
		t.Errorf("after: %q", got)
	}
}

// TestOverrides checks that an owner name in the overrides file is served
// from the file alone, read on every query.
func TestOverrides(t *testing.T) {
	s, _, _, path := start(t)
	write := func(text string) {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(dkimHost + ". IN TXT \"v=DKIM1; k=rsa; p=pasted-here\"\n")
	r := ask(t, s.Addr(), "udp", dkimHost, dns.TypeCNAME)
	if len(r.Answer) != 0 || r.Rcode != dns.RcodeSuccess {
		t.Errorf("CNAME after the override: %s %q, want no data", dns.RcodeToString[r.Rcode], answers(r))
	}
	if got := answers(ask(t, s.Addr(), "udp", dkimHost, dns.TypeTXT)); len(got) != 1 || !strings.Contains(got[0], "pasted-here") {
		t.Errorf("TXT after the override: %q", got)
	}
	write("$ORIGIN newsletter.example.com.\nmkt1._domainkey CNAME mkt1.tok.dkim.sg.localhost.newsletter.example.com.\n")
	if got := answers(ask(t, s.Addr(), "udp", dkimHost, dns.TypeCNAME)); len(got) != 1 || !strings.Contains(got[0], "sg.localhost.newsletter.example.com.") {
		t.Errorf("CNAME after the second override: %q", got)
	}
	write("this is not a zone file\n")
	if got := answers(ask(t, s.Addr(), "udp", dkimHost, dns.TypeCNAME)); len(got) != 1 || got[0] != "CNAME "+dkimTarget+"." {
		t.Errorf("a broken overrides file must be ignored: %q", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := answers(ask(t, s.Addr(), "udp", dkimHost, dns.TypeCNAME)); len(got) != 1 || got[0] != "CNAME "+dkimTarget+"." {
		t.Errorf("after removing the file: %q", got)
	}
}

// TestFailures checks that a source or provider zone that cannot answer
// gives SERVFAIL (a transient failure), never NXDOMAIN.
func TestFailures(t *testing.T) {
	s, src, provider, _ := start(t)
	provider.SetServFail(dkimTarget, true)
	if r := ask(t, s.Addr(), "udp", dkimHost, dns.TypeTXT); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("provider zone SERVFAIL: got %s", dns.RcodeToString[r.Rcode])
	}
	src.set(nil, errors.New("database is down"))
	if r := ask(t, s.Addr(), "udp", dkimHost, dns.TypeCNAME); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("source failing: got %s", dns.RcodeToString[r.Rcode])
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:53", "[::]:0", "example.com:53"} {
		if _, err := demodns.Start(demodns.Config{Addr: addr, Source: &source{}}); err == nil || !strings.Contains(err.Error(), "loopback") && !strings.Contains(err.Error(), "ip:port") {
			t.Errorf("Start(%q) = %v, want a refusal naming loopback", addr, err)
		}
	}
}
