package dnstest_test

import (
	"slices"
	"testing"

	"github.com/miekg/dns"

	"github.com/sendergate/sendergate/internal/dnstest"
)

// ask sends one question to s over net ("udp" or "tcp"), with EDNS0 when
// edns is set.
func ask(t *testing.T, s *dnstest.Server, network, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	resp, _, err := (&dns.Client{Net: network}).Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, dns.TypeToString[qtype], name, err)
	}
	return resp
}

func TestServerAnswers(t *testing.T) {
	s := dnstest.NewServer(t)
	s.Reset(t, []string{
		"sel._domainkey.example.com. 300 IN CNAME sel.dkim.sg.example.",
		"click.example.com. 300 IN A 192.0.2.10",
		"click.example.com. 300 IN AAAA 2001:db8::10",
	}, []string{"broken.example.com"}, []string{"big.example.com"})
	s.Add(t, "big.example.com. 300 IN TXT \"v=spf1 -all\"")
	s.PublishCNAME("Mailing.Example.COM", "tok.bounce.sg.example")
	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		network   string
		wantRcode int
		wantTC    bool
		wantTypes []uint16 // of the answer records, in order
	}{
		{name: "CNAME for any type", qname: "sel._domainkey.example.com", qtype: dns.TypeTXT, network: "udp",
			wantRcode: dns.RcodeSuccess, wantTypes: []uint16{dns.TypeCNAME}},
		{name: "published CNAME, case-insensitive", qname: "MAILING.example.com", qtype: dns.TypeCNAME, network: "udp",
			wantRcode: dns.RcodeSuccess, wantTypes: []uint16{dns.TypeCNAME}},
		{name: "only the asked type", qname: "click.example.com", qtype: dns.TypeAAAA, network: "udp",
			wantRcode: dns.RcodeSuccess, wantTypes: []uint16{dns.TypeAAAA}},
		{name: "no data at an existing name", qname: "click.example.com", qtype: dns.TypeTXT, network: "udp",
			wantRcode: dns.RcodeSuccess},
		{name: "unknown name", qname: "nowhere.example.com", qtype: dns.TypeA, network: "udp",
			wantRcode: dns.RcodeNameError},
		{name: "SERVFAIL", qname: "broken.example.com", qtype: dns.TypeA, network: "tcp",
			wantRcode: dns.RcodeServerFailure},
		{name: "truncated over UDP", qname: "big.example.com", qtype: dns.TypeTXT, network: "udp",
			wantRcode: dns.RcodeSuccess, wantTC: true},
		{name: "answered over TCP after TC", qname: "big.example.com", qtype: dns.TypeTXT, network: "tcp",
			wantRcode: dns.RcodeSuccess, wantTypes: []uint16{dns.TypeTXT}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ask(t, s, tt.network, tt.qname, tt.qtype, false)
			var types []uint16
			for _, rr := range resp.Answer {
				types = append(types, rr.Header().Rrtype)
			}
			if resp.Rcode != tt.wantRcode || resp.Truncated != tt.wantTC || !slices.Equal(types, tt.wantTypes) {
				t.Fatalf("rcode %s TC %v answer %v, want %s %v %v", dns.RcodeToString[resp.Rcode], resp.Truncated,
					resp.Answer, dns.RcodeToString[tt.wantRcode], tt.wantTC, tt.wantTypes)
			}
		})
	}
	if cn := ask(t, s, "udp", "mailing.example.com", dns.TypeA, false).Answer[0].(*dns.CNAME); cn.Target != "tok.bounce.sg.example." {
		t.Errorf("published CNAME target %q", cn.Target)
	}
}

func TestServerEdits(t *testing.T) {
	s := dnstest.NewServer(t)
	s.PublishCNAME("a.example.com", "one.sg.example")
	s.PublishCNAME("a.example.com", "two.sg.example")
	if resp := ask(t, s, "udp", "a.example.com", dns.TypeCNAME, false); len(resp.Answer) != 1 ||
		resp.Answer[0].(*dns.CNAME).Target != "two.sg.example." {
		t.Fatalf("republished CNAME: %v, want only two.sg.example.", resp.Answer)
	}
	s.SetServFail("a.example.com", true)
	if rc := ask(t, s, "udp", "a.example.com", dns.TypeCNAME, false).Rcode; rc != dns.RcodeServerFailure {
		t.Fatalf("with SERVFAIL on: %s", dns.RcodeToString[rc])
	}
	s.SetServFail("a.example.com", false)
	if rc := ask(t, s, "udp", "a.example.com", dns.TypeCNAME, false).Rcode; rc != dns.RcodeSuccess {
		t.Fatalf("with SERVFAIL off: %s", dns.RcodeToString[rc])
	}
	s.Remove("A.example.com.")
	if rc := ask(t, s, "udp", "a.example.com", dns.TypeCNAME, false).Rcode; rc != dns.RcodeNameError {
		t.Fatalf("after Remove: %s, want NXDOMAIN", dns.RcodeToString[rc])
	}
}

func TestServerSawEDNSAndTCP(t *testing.T) {
	s := dnstest.NewServer(t)
	if resp := ask(t, s, "udp", "x.example", dns.TypeA, false); resp.IsEdns0() != nil || s.SawEDNS() || s.SawTCP() {
		t.Fatalf("plain UDP query: OPT in answer %v, SawEDNS %v, SawTCP %v; want none", resp.IsEdns0() != nil, s.SawEDNS(), s.SawTCP())
	}
	if resp := ask(t, s, "udp", "x.example", dns.TypeA, true); resp.IsEdns0() == nil || !s.SawEDNS() {
		t.Fatalf("EDNS0 query: OPT in answer %v, SawEDNS %v; want both", resp.IsEdns0() != nil, s.SawEDNS())
	}
	ask(t, s, "tcp", "x.example", dns.TypeA, false)
	if !s.SawTCP() {
		t.Fatal("SawTCP false after a TCP query")
	}
}

func TestServerDelegates(t *testing.T) {
	provider := dnstest.NewServer(t)
	provider.Reset(t, []string{`sel.tok.dkim.sg.example. 300 IN TXT "v=DKIM1; k=ed25519; p=AAAA"`}, nil, nil)
	s := dnstest.NewServer(t)
	s.Reset(t, []string{"sel._domainkey.example.com. 300 IN CNAME sel.tok.dkim.sg.example."}, []string{"broken.sg.example"}, nil)
	s.Delegate("SG.example.", provider.Addr())
	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		network   string
		wantRcode int
		wantTypes []uint16
		wantRA    bool
	}{
		{name: "data in the delegated zone", qname: "sel.tok.dkim.sg.example", qtype: dns.TypeTXT, network: "udp",
			wantRcode: dns.RcodeSuccess, wantTypes: []uint16{dns.TypeTXT}, wantRA: true},
		{name: "over TCP", qname: "sel.tok.dkim.sg.example", qtype: dns.TypeTXT, network: "tcp",
			wantRcode: dns.RcodeSuccess, wantTypes: []uint16{dns.TypeTXT}, wantRA: true},
		{name: "NXDOMAIN of the delegated server", qname: "other.dkim.sg.example", qtype: dns.TypeTXT, network: "udp",
			wantRcode: dns.RcodeNameError, wantRA: true},
		{name: "SERVFAIL set locally wins", qname: "broken.sg.example", qtype: dns.TypeTXT, network: "udp",
			wantRcode: dns.RcodeServerFailure},
		{name: "names outside the zone answered locally", qname: "sel._domainkey.example.com", qtype: dns.TypeCNAME, network: "udp",
			wantRcode: dns.RcodeSuccess, wantTypes: []uint16{dns.TypeCNAME}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ask(t, s, tt.network, tt.qname, tt.qtype, true)
			var types []uint16
			for _, rr := range resp.Answer {
				types = append(types, rr.Header().Rrtype)
			}
			if resp.Rcode != tt.wantRcode || !slices.Equal(types, tt.wantTypes) || resp.RecursionAvailable != tt.wantRA || resp.Authoritative {
				t.Fatalf("rcode %s answer %v RA %v AA %v, want %s %v RA %v, not AA", dns.RcodeToString[resp.Rcode], resp.Answer,
					resp.RecursionAvailable, resp.Authoritative, dns.RcodeToString[tt.wantRcode], tt.wantTypes, tt.wantRA)
			}
		})
	}
	if !provider.SawTCP() {
		t.Error("a TCP query was not forwarded over TCP")
	}

	s.Delegate("sg.example", "127.0.0.1:1") // nothing listens there
	if rc := ask(t, s, "tcp", "sel.tok.dkim.sg.example", dns.TypeTXT, false).Rcode; rc != dns.RcodeServerFailure {
		t.Errorf("delegated to a dead server: %s, want SERVFAIL", dns.RcodeToString[rc])
	}
	s.Delegate("sg.example", "")
	if rc := ask(t, s, "udp", "sel.tok.dkim.sg.example", dns.TypeTXT, false).Rcode; rc != dns.RcodeNameError {
		t.Errorf("after removing the delegation: %s, want NXDOMAIN from the local record set", dns.RcodeToString[rc])
	}
}
