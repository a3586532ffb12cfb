package zone

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// bigRRset returns n 400-byte TXT records at one name: an answer of about
// n*420 bytes.
func bigRRset(name string, n int) []dns.RR {
	var rrs []dns.RR
	for i := range n {
		rrs = append(rrs, TXT(name, 300, fmt.Sprintf("%03d", i)+longValue[3:]))
	}
	return rrs
}

func TestTruncation(t *testing.T) {
	s := newTestServer(t, Config{})
	const big = "big.sg.localhost."
	s.Update(s.Serial()+1, append(testRecords(), bigRRset(big, 20)...))
	tests := []struct {
		name      string
		network   string
		ednsSize  uint16 // 0: no EDNS
		wantTC    bool
		wantCount int // -1: partial, not checked
		maxSize   int // of the packed reply; 0: not checked
	}{
		{name: "udp without EDNS", network: "udp", wantTC: true, wantCount: -1, maxSize: dns.MinMsgSize},
		{name: "udp EDNS 4096 capped at 1232", network: "udp", ednsSize: 4096, wantTC: true, wantCount: -1, maxSize: maxUDPSize},
		{name: "udp EDNS below 512 gets 512", network: "udp", ednsSize: 100, wantTC: true, wantCount: -1, maxSize: dns.MinMsgSize},
		{name: "tcp full answer", network: "tcp", wantCount: 20},
		{name: "tcp with EDNS full answer", network: "tcp", ednsSize: 1232, wantCount: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := query(big, dns.TypeTXT)
			if tt.ednsSize != 0 {
				m.SetEdns0(tt.ednsSize, false)
			}
			r := exchange(t, s, tt.network, m)
			if r.Truncated != tt.wantTC {
				t.Errorf("TC = %v, want %v", r.Truncated, tt.wantTC)
			}
			if tt.wantCount >= 0 && len(r.Answer) != tt.wantCount {
				t.Errorf("%d answers, want %d", len(r.Answer), tt.wantCount)
			}
			if tt.maxSize > 0 && r.Len() > tt.maxSize {
				t.Errorf("reply of %d bytes exceeds %d", r.Len(), tt.maxSize)
			}
			if (tt.ednsSize != 0) != (r.IsEdns0() != nil) {
				t.Errorf("OPT in reply = %v, want %v", r.IsEdns0() != nil, tt.ednsSize != 0)
			}
		})
	}
}

func TestEDNS(t *testing.T) {
	s := newTestServer(t, Config{})
	tests := []struct {
		name      string
		version   uint8
		do        bool
		wantRcode int
	}{
		{name: "version 0", wantRcode: dns.RcodeSuccess},
		{name: "DO bit echoed", do: true, wantRcode: dns.RcodeSuccess},
		{name: "version 1 is BADVERS", version: 1, wantRcode: dns.RcodeBadVers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := query(dkimName, dns.TypeTXT)
			m.SetEdns0(1400, tt.do)
			m.IsEdns0().SetVersion(tt.version)
			r := exchange(t, s, "udp", m)
			if r.Rcode != tt.wantRcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.wantRcode])
			}
			opt := r.IsEdns0()
			if opt == nil {
				t.Fatal("no OPT in reply")
			}
			if opt.UDPSize() != maxUDPSize || opt.Do() != tt.do || opt.Version() != 0 {
				t.Errorf("OPT size %d DO %v version %d, want %d %v 0", opt.UDPSize(), opt.Do(), opt.Version(), maxUDPSize, tt.do)
			}
		})
	}
}

// transferIn runs an AXFR from s and returns every record received, or the
// error (a refusal comes back as an error from dns.Transfer).
func transferIn(t *testing.T, s *Server, zone string) ([]dns.RR, error) {
	t.Helper()
	m := new(dns.Msg)
	m.SetAxfr(zone)
	ch, err := (&dns.Transfer{}).In(m, s.TCPAddr().String())
	if err != nil {
		return nil, err
	}
	var rrs []dns.RR
	for env := range ch {
		if env.Error != nil {
			return rrs, env.Error
		}
		rrs = append(rrs, env.RR...)
	}
	return rrs, nil
}

func TestAXFRAllowed(t *testing.T) {
	s := newTestServer(t, Config{AllowTransfer: []string{"10.0.0.0/8", "127.0.0.1"}})
	// Enough data for several AXFR messages (about 84 KB).
	s.Update(s.Serial()+1, append(testRecords(), bigRRset("big.sg.localhost.", 200)...))
	rrs, err := transferIn(t, s, "sg.localhost.")
	if err != nil {
		t.Fatalf("AXFR: %v", err)
	}
	wantCount := 1 + 1 + len(testRecords()) + 200 + 1 // SOA, NS, data, SOA
	if len(rrs) != wantCount {
		t.Fatalf("received %d records, want %d", len(rrs), wantCount)
	}
	first, okFirst := rrs[0].(*dns.SOA)
	last, okLast := rrs[len(rrs)-1].(*dns.SOA)
	if !okFirst || !okLast || first.Serial != last.Serial || first.Serial != s.Serial() {
		t.Fatalf("AXFR must start and end with the current SOA: first %v, last %v", rrs[0], rrs[len(rrs)-1])
	}
	var sawDKIM bool
	for _, rr := range rrs[1 : len(rrs)-1] {
		if rr.Header().Rrtype == dns.TypeSOA {
			t.Errorf("SOA inside the transfer: %v", rr)
		}
		if txt, ok := rr.(*dns.TXT); ok && txt.Hdr.Name == dkimName && strings.Join(txt.Txt, "") == longValue {
			sawDKIM = true
		}
	}
	if !sawDKIM {
		t.Error("DKIM TXT record missing from the transfer")
	}
}

func TestAXFRRefused(t *testing.T) {
	tests := []struct {
		name      string
		allow     []string
		network   string
		qname     string
		qtype     uint16
		wantRcode int
	}{
		{name: "empty allow list", allow: nil, network: "tcp", qname: "sg.localhost.", qtype: dns.TypeAXFR, wantRcode: dns.RcodeRefused},
		{name: "not in allow list", allow: []string{"10.0.0.0/8", "::1"}, network: "tcp", qname: "sg.localhost.", qtype: dns.TypeAXFR, wantRcode: dns.RcodeRefused},
		{name: "over UDP", allow: []string{"127.0.0.1"}, network: "udp", qname: "sg.localhost.", qtype: dns.TypeAXFR, wantRcode: dns.RcodeRefused},
		{name: "not the apex", allow: []string{"127.0.0.1"}, network: "tcp", qname: dkimName, qtype: dns.TypeAXFR, wantRcode: dns.RcodeNotAuth},
		{name: "other zone", allow: []string{"127.0.0.1"}, network: "tcp", qname: "example.com.", qtype: dns.TypeAXFR, wantRcode: dns.RcodeRefused},
		{name: "IXFR not allowed", allow: nil, network: "tcp", qname: "sg.localhost.", qtype: dns.TypeIXFR, wantRcode: dns.RcodeRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Config{AllowTransfer: tt.allow})
			r := exchange(t, s, tt.network, query(tt.qname, tt.qtype))
			if r.Rcode != tt.wantRcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.wantRcode])
			}
			if len(r.Answer) != 0 {
				t.Errorf("refused transfer carries records: %v", r.Answer)
			}
		})
	}
	s := newTestServer(t, Config{})
	if rrs, err := transferIn(t, s, "sg.localhost."); err == nil {
		t.Fatalf("dns.Transfer succeeded with %d records and no allow list", len(rrs))
	}
}

func TestIXFR(t *testing.T) {
	s := newTestServer(t, Config{AllowTransfer: []string{"127.0.0.1"}})
	r := exchange(t, s, "udp", query("sg.localhost.", dns.TypeIXFR))
	if len(r.Answer) != 1 || r.Answer[0].(*dns.SOA).Serial != s.Serial() {
		t.Errorf("IXFR over UDP: %v, want the SOA alone", r.Answer)
	}
	r = exchange(t, s, "tcp", query("sg.localhost.", dns.TypeIXFR))
	if n := len(r.Answer); n != 1+1+len(testRecords())+1 {
		t.Errorf("IXFR over TCP: %d records, want the full zone in AXFR form", n)
	}
}

func TestUpdate(t *testing.T) {
	s := newTestServer(t, Config{TTL: 90})
	serialOf := func() uint32 {
		r := exchange(t, s, "udp", query("sg.localhost.", dns.TypeSOA))
		return r.Answer[0].(*dns.SOA).Serial
	}
	before := serialOf()
	const fresh = "sg2.klmnopqrst.dkim.sg.localhost."
	s.Update(s.Serial()+1, []dns.RR{
		TXT(fresh, 0, "v=DKIM1; k=ed25519; p=abc"),
		TXT("outside.example.com.", 60, "ignored"),
		&dns.SOA{Hdr: dns.RR_Header{Name: "sg.localhost.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Serial: 1},
		&dns.NS{Hdr: dns.RR_Header{Name: "sub.sg.localhost.", Rrtype: dns.TypeNS, Class: dns.ClassINET}, Ns: "evil.example."},
		A("new.sg.localhost", 60, nil), // nil record
	})
	after := serialOf()
	if after <= before {
		t.Errorf("serial %d after update, want > %d", after, before)
	}
	r := exchange(t, s, "udp", query(strings.ToUpper(fresh), dns.TypeTXT))
	if len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 90 {
		t.Fatalf("new record with TTL 0 should answer with the zone TTL 90: %v", r.Answer)
	}
	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		wantRcode int
	}{
		{name: "old record gone", qname: dkimName, qtype: dns.TypeTXT, wantRcode: dns.RcodeNameError},
		{name: "outside record not served", qname: "outside.example.com.", qtype: dns.TypeTXT, wantRcode: dns.RcodeRefused},
		{name: "NS below apex skipped", qname: "sub.sg.localhost.", qtype: dns.TypeNS, wantRcode: dns.RcodeNameError},
	}
	for _, tt := range tests {
		r := exchange(t, s, "tcp", query(tt.qname, tt.qtype))
		if r.Rcode != tt.wantRcode {
			t.Errorf("%s: rcode %s, want %s", tt.name, dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.wantRcode])
		}
	}
	if r := exchange(t, s, "udp", query("sg.localhost.", dns.TypeSOA)); r.Answer[0].(*dns.SOA).Serial == 1 {
		t.Error("SOA from Update replaced the generated one")
	}
	s.Update(s.Serial()+1, nil)
	if again := serialOf(); again <= after {
		t.Errorf("serial %d after second update, want > %d", again, after)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "no zone", cfg: Config{Nameservers: []string{"ns1.sg.localhost"}}},
		{name: "root zone", cfg: Config{Zone: ".", Nameservers: []string{"ns1.sg.localhost"}}},
		{name: "bad zone", cfg: Config{Zone: "a..b", Nameservers: []string{"ns1.sg.localhost"}}},
		{name: "no nameservers", cfg: Config{Zone: testZone}},
		{name: "bad nameserver", cfg: Config{Zone: testZone, Nameservers: []string{""}}},
		{name: "bad transfer address", cfg: Config{Zone: testZone, Nameservers: []string{"ns1.sg.localhost"}, AllowTransfer: []string{"localhost"}}},
		{name: "bad transfer prefix", cfg: Config{Zone: testZone, Nameservers: []string{"ns1.sg.localhost"}, AllowTransfer: []string{"10.0.0.0/33"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Fatalf("New(%+v) succeeded", tt.cfg)
			}
		})
	}
	s, err := New(Config{Zone: "SG.Localhost.", Nameservers: []string{"ns1.sg.localhost"}})
	if err != nil || s.Origin() != "sg.localhost." {
		t.Fatalf("New normalises the zone: origin %q, err %v", s.Origin(), err)
	}
}

func TestLifecycle(t *testing.T) {
	s := newTestServer(t, Config{})
	if s.UDPAddr() == nil || s.TCPAddr() == nil {
		t.Fatal("addresses missing after Start")
	}
	if s.UDPAddr().(*net.UDPAddr).Port != s.TCPAddr().(*net.TCPAddr).Port {
		t.Errorf("UDP %v and TCP %v differ in port", s.UDPAddr(), s.TCPAddr())
	}
	if err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("second Start succeeded")
	}
	other, err := New(Config{Zone: testZone, Nameservers: []string{"ns1.sg.localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(s.TCPAddr().String()); err == nil {
		other.Shutdown(context.Background())
		t.Error("Start on a port in use succeeded")
	}
	addr := s.UDPAddr().String()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if s.UDPAddr() != nil || s.TCPAddr() != nil {
		t.Error("addresses still reported after Shutdown")
	}
	if _, _, err := (&dns.Client{Net: "tcp"}).Exchange(query(dkimName, dns.TypeTXT), addr); err == nil {
		t.Error("TCP query answered after Shutdown")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}
