package zone

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

const (
	testZone  = "sg.localhost"
	dkimName  = "sg1.abcdefghij.dkim.sg.localhost."
	bounce    = "abcdefghij.bounce.sg.localhost."
	trackName = "track.sg.localhost."
	nsName    = "ns1.sg.localhost."
)

// longValue is a 400-byte TXT value, longer than one character-string.
var longValue = "v=DKIM1; k=rsa; p=" + strings.Repeat("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A", 13)[:382]

func testRecords() []dns.RR {
	return []dns.RR{
		TXT(dkimName, 300, longValue),
		MX(bounce, 300, 10, "mx.sg.localhost"),
		TXT(bounce, 300, "v=spf1 ip4:127.0.0.1 -all"),
		A(trackName, 300, net.ParseIP("192.0.2.10")),
		A(trackName, 300, net.ParseIP("2001:db8::10")),
		A(nsName, 300, net.ParseIP("127.0.0.1")),
	}
}

// newTestServer starts a server for testZone on 127.0.0.1:0 holding
// testRecords; cfg fields left zero get test defaults.
func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Zone == "" {
		cfg.Zone = testZone
	}
	if cfg.Nameservers == nil {
		cfg.Nameservers = []string{"ns1.sg.localhost"}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.Update(1, testRecords())
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

// exchange sends m over network ("udp" or "tcp") to s.
func exchange(t *testing.T, s *Server, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	addr := s.UDPAddr().String()
	if network == "tcp" {
		addr = s.TCPAddr().String()
	}
	c := &dns.Client{Net: network, UDPSize: dns.DefaultMsgSize}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("exchange %s over %s: %v", m.Question[0].String(), network, err)
	}
	if r.Id != m.Id {
		t.Fatalf("reply id %d, want %d", r.Id, m.Id)
	}
	return r
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	return m
}

func types(rrs []dns.RR) []uint16 {
	var ts []uint16
	for _, rr := range rrs {
		ts = append(ts, rr.Header().Rrtype)
	}
	slices.Sort(ts)
	return ts
}

func TestQueries(t *testing.T) {
	s := newTestServer(t, Config{})
	tests := []struct {
		name        string
		network     string
		qname       string
		qtype       uint16
		qclass      uint16
		wantRcode   int
		wantAA      bool
		wantAnswer  []uint16 // sorted types
		wantNegSOA  bool     // SOA in the authority section
		wantExtraIP int      // glue records in the additional section
	}{
		{name: "apex SOA", network: "udp", qname: "sg.localhost.", qtype: dns.TypeSOA, wantAA: true, wantAnswer: []uint16{dns.TypeSOA}},
		{name: "apex NS with glue", network: "tcp", qname: "sg.localhost.", qtype: dns.TypeNS, wantAA: true, wantAnswer: []uint16{dns.TypeNS}, wantExtraIP: 1},
		{name: "dkim TXT", network: "udp", qname: dkimName, qtype: dns.TypeTXT, wantAA: true, wantAnswer: []uint16{dns.TypeTXT}},
		{name: "bounce MX", network: "udp", qname: bounce, qtype: dns.TypeMX, wantAA: true, wantAnswer: []uint16{dns.TypeMX}},
		{name: "tracking A", network: "udp", qname: trackName, qtype: dns.TypeA, wantAA: true, wantAnswer: []uint16{dns.TypeA}},
		{name: "tracking AAAA", network: "tcp", qname: trackName, qtype: dns.TypeAAAA, wantAA: true, wantAnswer: []uint16{dns.TypeAAAA}},
		{name: "ANY", network: "tcp", qname: bounce, qtype: dns.TypeANY, wantAA: true, wantAnswer: []uint16{dns.TypeTXT, dns.TypeMX}},
		{name: "upper case", network: "udp", qname: strings.ToUpper(dkimName), qtype: dns.TypeTXT, wantAA: true, wantAnswer: []uint16{dns.TypeTXT}},
		{name: "mixed case apex", network: "tcp", qname: "Sg.LocalHost.", qtype: dns.TypeSOA, wantAA: true, wantAnswer: []uint16{dns.TypeSOA}},
		{name: "NODATA existing name", network: "udp", qname: trackName, qtype: dns.TypeTXT, wantAA: true, wantNegSOA: true},
		{name: "NODATA empty non-terminal", network: "udp", qname: "dkim.sg.localhost.", qtype: dns.TypeTXT, wantAA: true, wantNegSOA: true},
		{name: "NODATA deeper empty non-terminal", network: "tcp", qname: "ABCDEFGHIJ.dkim.sg.localhost.", qtype: dns.TypeA, wantAA: true, wantNegSOA: true},
		{name: "NXDOMAIN unknown", network: "udp", qname: "nope.sg.localhost.", qtype: dns.TypeA, wantRcode: dns.RcodeNameError, wantAA: true, wantNegSOA: true},
		{name: "NXDOMAIN below a leaf", network: "tcp", qname: "x." + dkimName, qtype: dns.TypeTXT, wantRcode: dns.RcodeNameError, wantAA: true, wantNegSOA: true},
		{name: "NXDOMAIN other token", network: "udp", qname: "sg1.zzzzzzzzzz.dkim.sg.localhost.", qtype: dns.TypeTXT, wantRcode: dns.RcodeNameError, wantAA: true, wantNegSOA: true},
		{name: "REFUSED outside", network: "udp", qname: "example.com.", qtype: dns.TypeA, wantRcode: dns.RcodeRefused},
		{name: "REFUSED parent", network: "tcp", qname: "localhost.", qtype: dns.TypeSOA, wantRcode: dns.RcodeRefused},
		{name: "REFUSED suffix lookalike", network: "udp", qname: "xsg.localhost.", qtype: dns.TypeA, wantRcode: dns.RcodeRefused},
		{name: "REFUSED chaos class", network: "udp", qname: "sg.localhost.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS, wantRcode: dns.RcodeRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := query(tt.qname, tt.qtype)
			if tt.qclass != 0 {
				m.Question[0].Qclass = tt.qclass
			}
			r := exchange(t, s, tt.network, m)
			if r.Rcode != tt.wantRcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.wantRcode])
			}
			if r.Authoritative != tt.wantAA {
				t.Errorf("AA = %v, want %v", r.Authoritative, tt.wantAA)
			}
			if r.RecursionAvailable {
				t.Error("RA set by an authoritative-only server")
			}
			want := slices.Clone(tt.wantAnswer)
			slices.Sort(want)
			if got := types(r.Answer); !slices.Equal(got, want) {
				t.Errorf("answer types %v, want %v (%v)", got, want, r.Answer)
			}
			for _, rr := range r.Answer {
				if rr.Header().Name != tt.qname {
					t.Errorf("owner %q, want the question's spelling %q", rr.Header().Name, tt.qname)
				}
			}
			gotNeg := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA
			if gotNeg != tt.wantNegSOA {
				t.Errorf("authority %v, want SOA: %v", r.Ns, tt.wantNegSOA)
			}
			if len(r.Extra) != tt.wantExtraIP {
				t.Errorf("additional %v, want %d glue records", r.Extra, tt.wantExtraIP)
			}
		})
	}
}

func TestApexRecords(t *testing.T) {
	s := newTestServer(t, Config{Nameservers: []string{"NS1.sg.localhost", "ns2.example.net."}, TTL: 120})
	r := exchange(t, s, "udp", query("sg.localhost.", dns.TypeSOA))
	soa := r.Answer[0].(*dns.SOA)
	if soa.Ns != "ns1.sg.localhost." || soa.Mbox != "hostmaster.sg.localhost." || soa.Hdr.Ttl != 120 || soa.Minttl != 120 {
		t.Errorf("SOA = %v", soa)
	}
	r = exchange(t, s, "udp", query("sg.localhost.", dns.TypeNS))
	var got []string
	for _, rr := range r.Answer {
		got = append(got, rr.(*dns.NS).Ns)
	}
	if want := []string{"ns1.sg.localhost.", "ns2.example.net."}; !slices.Equal(got, want) {
		t.Errorf("NS = %v, want %v", got, want)
	}
}

func TestTXTSplitting(t *testing.T) {
	s := newTestServer(t, Config{})
	if len(longValue) != 400 {
		t.Fatalf("test value is %d bytes, want 400", len(longValue))
	}
	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, s, network, query(dkimName, dns.TypeTXT))
		if len(r.Answer) != 1 {
			t.Fatalf("%s: answer %v, want one TXT", network, r.Answer)
		}
		txt := r.Answer[0].(*dns.TXT).Txt
		if len(txt) != 2 || len(txt[0]) != 255 || len(txt[1]) != 145 {
			t.Errorf("%s: strings of %d bytes, want 255 and 145", network, lens(txt))
		}
		if joined := strings.Join(txt, ""); joined != longValue {
			t.Errorf("%s: joined value differs:\n got %q\nwant %q", network, joined, longValue)
		}
	}
}

func lens(ss []string) []int {
	var n []int
	for _, s := range ss {
		n = append(n, len(s))
	}
	return n
}

func TestTXTBuilder(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  []int // wire lengths of the character-strings
	}{
		{name: "empty", value: "", want: []int{0}},
		{name: "short", value: "v=spf1 -all", want: []int{11}},
		{name: "exactly 255", value: strings.Repeat("a", 255), want: []int{255}},
		{name: "256", value: strings.Repeat("a", 256), want: []int{255, 1}},
		{name: "511", value: strings.Repeat("a", 511), want: []int{255, 255, 1}},
		{name: "backslash and quote kept literally", value: `a\b"c\065`, want: []int{9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := TXT("x.sg.localhost", 60, tt.value)
			if rr.Hdr.Name != "x.sg.localhost." || rr.Hdr.Ttl != 60 || rr.Hdr.Rrtype != dns.TypeTXT {
				t.Errorf("header %v", rr.Hdr)
			}
			wire := wireStrings(t, rr)
			if got := lens(wire); !slices.Equal(got, tt.want) {
				t.Errorf("string lengths %v, want %v", got, tt.want)
			}
			if joined := strings.Join(wire, ""); joined != tt.value {
				t.Errorf("wire value %q, want %q", joined, tt.value)
			}
		})
	}
}

// wireStrings packs rr and returns its character-strings as raw bytes.
func wireStrings(t *testing.T, rr *dns.TXT) []string {
	t.Helper()
	buf := make([]byte, dns.Len(rr)+16)
	off, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	rdata := buf[off-int(rrRdlength(buf[:off])) : off]
	var out []string
	for len(rdata) > 0 {
		n := int(rdata[0])
		out = append(out, string(rdata[1:1+n]))
		rdata = rdata[1+n:]
	}
	return out
}

// rrRdlength reads RDLENGTH, the 2 bytes before the RDATA, from a packed RR.
func rrRdlength(packed []byte) uint16 {
	_, off, _ := dns.UnpackDomainName(packed, 0)
	return uint16(packed[off+8])<<8 | uint16(packed[off+9])
}

func TestBuilders(t *testing.T) {
	mx := MX("b.sg.localhost", 60, 10, "mx.example.net")
	if mx.Hdr.Name != "b.sg.localhost." || mx.Mx != "mx.example.net." || mx.Preference != 10 {
		t.Errorf("MX = %v", mx)
	}
	tests := []struct {
		name     string
		ip       net.IP
		wantType uint16 // 0: nil record
	}{
		{name: "v4", ip: net.ParseIP("192.0.2.1"), wantType: dns.TypeA},
		{name: "v4 in v6 form", ip: net.ParseIP("::ffff:192.0.2.1"), wantType: dns.TypeA},
		{name: "v6", ip: net.ParseIP("2001:db8::1"), wantType: dns.TypeAAAA},
		{name: "invalid", ip: net.IP{1, 2, 3}},
		{name: "nil", ip: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := A("t.sg.localhost", 60, tt.ip)
			if tt.wantType == 0 {
				if rr != nil {
					t.Fatalf("A(%v) = %v, want nil", tt.ip, rr)
				}
				return
			}
			if rr == nil || rr.Header().Rrtype != tt.wantType || rr.Header().Name != "t.sg.localhost." {
				t.Fatalf("A(%v) = %v, want type %s", tt.ip, rr, dns.TypeToString[tt.wantType])
			}
		})
	}
}

func TestConcurrentUpdates(t *testing.T) {
	s := newTestServer(t, Config{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			rrs := testRecords()
			rrs = append(rrs, TXT("n.sg.localhost", 60, strings.Repeat("x", i%300)))
			s.Update(uint32(i+2), rrs)
		}
	})
	for range 50 {
		r := exchange(t, s, "udp", query(dkimName, dns.TypeTXT))
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("stable record missing during updates: %v", r)
		}
	}
	close(stop)
	wg.Wait()
}
