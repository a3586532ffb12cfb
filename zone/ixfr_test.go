package zone

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestSerialGreater(t *testing.T) {
	tests := []struct {
		a, b uint32
		want bool
	}{
		{a: 2, b: 1, want: true},
		{a: 1, b: 2},
		{a: 5, b: 5},
		{a: 5, b: 0xfffffff0, want: true}, // wrapped around (RFC 1982 3.2)
		{a: 0xfffffff0, b: 5},
		{a: 1<<31 - 1, b: 0, want: true},
		{a: 1 << 31, b: 0}, // undefined distance: not greater
		{a: 0, b: 1 << 31},
	}
	for _, tt := range tests {
		if got := serialGreater(tt.a, tt.b); got != tt.want {
			t.Errorf("serialGreater(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func soaSerial(t *testing.T, s *Server) uint32 {
	t.Helper()
	r := exchange(t, s, "udp", query("sg.localhost.", dns.TypeSOA))
	return r.Answer[0].(*dns.SOA).Serial
}

func TestUpdateSerial(t *testing.T) {
	extra := TXT("sg2.klmnopqrst.dkim.sg.localhost", 0, "v=DKIM1; k=ed25519; p=abc")
	reordered := testRecords()
	slices.Reverse(reordered)
	tests := []struct {
		name   string
		start  uint32 // serial of the first Update, with testRecords
		serial uint32
		rrs    []dns.RR
		want   uint32
	}{
		{name: "same records, newer version: serial kept", start: 10, serial: 11, rrs: testRecords(), want: 10},
		{name: "same records reordered and duplicated: serial kept", start: 10, serial: 11, rrs: append(reordered, testRecords()[0]), want: 10},
		{name: "new record: given serial", start: 10, serial: 15, rrs: append(testRecords(), extra), want: 15},
		{name: "record removed: given serial", start: 10, serial: 11, rrs: testRecords()[1:], want: 11},
		{name: "TTL changed: given serial", start: 10, serial: 11, rrs: append(testRecords()[1:], TXT(dkimName, 60, longValue)), want: 11},
		{name: "given serial older: current+1", start: 10, serial: 9, rrs: append(testRecords(), extra), want: 11},
		{name: "given serial equal: current+1", start: 10, serial: 10, rrs: append(testRecords(), extra), want: 11},
		{name: "wraps around (RFC 1982)", start: 0xfffffff0, serial: 3, rrs: append(testRecords(), extra), want: 3},
		{name: "current+1 wraps", start: 0xffffffff, serial: 5, rrs: append(testRecords(), extra), want: 5},
		{name: "2^31 ahead is not greater", start: 10, serial: 10 + 1<<31, rrs: append(testRecords(), extra), want: 11},
		{name: "first load takes a low serial", start: 0, serial: 0, rrs: append(testRecords(), extra), want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{Zone: testZone, Nameservers: []string{"ns1.sg.localhost"}})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Update(tt.start, testRecords()); got != tt.start {
				t.Fatalf("first Update: serial %d, want %d as given", got, tt.start)
			}
			if err := s.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Shutdown(t.Context()) })
			if got := s.Update(tt.serial, tt.rrs); got != tt.want {
				t.Errorf("Update returned %d, want %d", got, tt.want)
			}
			if got := soaSerial(t, s); got != tt.want {
				t.Errorf("SOA serial %d, want %d", got, tt.want)
			}
		})
	}
}

// ixfrIn requests an IXFR from serial over TCP and returns every record
// received.
func ixfrIn(t *testing.T, s *Server, serial uint32) ([]dns.RR, error) {
	t.Helper()
	m := new(dns.Msg)
	m.SetIxfr("sg.localhost.", serial, "ns1.sg.localhost.", "hostmaster.sg.localhost.")
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

// zoneSet is a zone's records as a set of presentation forms, SOA excluded.
type zoneSet map[string]bool

func axfrSet(t *testing.T, s *Server) zoneSet {
	t.Helper()
	rrs, err := transferIn(t, s, "sg.localhost.")
	if err != nil {
		t.Fatalf("AXFR: %v", err)
	}
	set := zoneSet{}
	for _, rr := range rrs[1 : len(rrs)-1] {
		set[rr.String()] = true
	}
	return set
}

// applyIXFR applies an incremental IXFR answer (RFC 1995 4) to old and
// returns the result; it fails the test when rrs is not in that format.
func applyIXFR(t *testing.T, old zoneSet, rrs []dns.RR) zoneSet {
	t.Helper()
	soaAt := func(i int) *dns.SOA {
		soa, ok := rrs[i].(*dns.SOA)
		if !ok {
			t.Fatalf("record %d is %v, want an SOA", i, rrs[i])
		}
		return soa
	}
	final := soaAt(0).Serial
	if last := soaAt(len(rrs) - 1).Serial; last != final || len(rrs) < 3 {
		t.Fatalf("IXFR must start and end with the current SOA: %v", rrs)
	}
	set := maps.Clone(old)
	i := 1
	for i < len(rrs)-1 {
		from := soaAt(i).Serial
		for i++; rrs[i].Header().Rrtype != dns.TypeSOA; i++ {
			if !set[rrs[i].String()] {
				t.Fatalf("step from %d deletes %v, which the zone does not hold", from, rrs[i])
			}
			delete(set, rrs[i].String())
		}
		to := soaAt(i).Serial
		if !serialGreater(to, from) {
			t.Fatalf("step from %d to %d goes backwards", from, to)
		}
		for i++; rrs[i].Header().Rrtype != dns.TypeSOA; i++ {
			set[rrs[i].String()] = true
		}
	}
	return set
}

// journaled returns a server that went through four versions: 10 (test
// records and one more), 11 (one record added), 12 (one removed, one added), 13 (a TTL
// changed), with the zone's records at each serial.
func journaled(t *testing.T, cfg Config) (*Server, map[uint32]zoneSet) {
	t.Helper()
	cfg.AllowTransfer = []string{"127.0.0.1"}
	s := newTestServer(t, cfg)
	sets := map[uint32]zoneSet{}
	rrs := append(testRecords(), TXT("base.sg.localhost", 0, "base"))
	s.Update(10, rrs)
	sets[10] = axfrSet(t, s)
	rrs = append(rrs, TXT("sg1.newdomainx.dkim.sg.localhost", 0, "v=DKIM1; k=ed25519; p=new"))
	s.Update(11, rrs)
	sets[11] = axfrSet(t, s)
	rrs = append(rrs[1:], TXT("other.dmarc.sg.localhost", 0, "v=DMARC1; p=none"))
	s.Update(12, rrs)
	sets[12] = axfrSet(t, s)
	rrs = append(rrs[1:], MX(bounce, 60, 10, "mx.sg.localhost")) // was TTL 300
	s.Update(13, rrs)
	sets[13] = axfrSet(t, s)
	return s, sets
}

func TestIXFRIncremental(t *testing.T) {
	s, sets := journaled(t, Config{})
	for _, from := range []uint32{10, 11, 12} {
		t.Run(fmt.Sprint("from ", from), func(t *testing.T) {
			rrs, err := ixfrIn(t, s, from)
			if err != nil {
				t.Fatalf("IXFR: %v", err)
			}
			if soa, ok := rrs[1].(*dns.SOA); !ok || soa.Serial != from {
				t.Fatalf("second record %v, want the SOA of the client's serial %d (an incremental answer)", rrs[1], from)
			}
			steps := 0
			for _, rr := range rrs {
				if rr.Header().Rrtype == dns.TypeSOA {
					steps++
				}
			}
			if want := 2 + 2*int(13-from); steps != want {
				t.Errorf("%d SOA records, want %d: one pair per change since %d", steps, want, from)
			}
			got := applyIXFR(t, sets[from], rrs)
			if !maps.Equal(got, sets[13]) {
				t.Errorf("zone at %d plus the IXFR differs from the zone at 13:\n got %v\nwant %v", from, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(sets[13])))
			}
		})
	}
	if n := s.metrics.ixfr.Load(); n != 3 {
		t.Errorf("%d incremental transfers counted, want 3", n)
	}
}

func TestIXFRAnswers(t *testing.T) {
	s, _ := journaled(t, Config{})
	full := 2 + 1 + len(testRecords()) + 2 // SOAs, NS, records: one removed, three added
	tests := []struct {
		name      string
		network   string
		serial    uint32 // 0: no SOA in the request
		wantRcode int
		wantCount int
		wantIncr  bool // second record is the client's SOA
	}{
		{name: "up to date", network: "tcp", serial: 13, wantCount: 1},
		{name: "client ahead (another instance)", network: "tcp", serial: 20, wantCount: 1},
		{name: "unknown serial: full zone", network: "tcp", serial: 5, wantCount: full},
		{name: "no SOA in the request: full zone", network: "tcp", wantCount: full},
		{name: "UDP incremental fits", network: "udp", serial: 12, wantCount: 6, wantIncr: true},
		{name: "UDP up to date", network: "udp", serial: 13, wantCount: 1},
		{name: "UDP unknown serial: SOA alone", network: "udp", serial: 5, wantCount: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := query("sg.localhost.", dns.TypeIXFR)
			if tt.serial != 0 {
				m.Ns = []dns.RR{&dns.SOA{Hdr: header("sg.localhost.", dns.TypeSOA, 0), Ns: "ns1.sg.localhost.", Mbox: "h.sg.localhost.", Serial: tt.serial}}
			}
			r := exchange(t, s, tt.network, m)
			if r.Rcode != tt.wantRcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.wantRcode])
			}
			if !r.Authoritative || r.Truncated {
				t.Errorf("AA %v TC %v, want AA and no TC", r.Authoritative, r.Truncated)
			}
			if len(r.Answer) != tt.wantCount {
				t.Fatalf("%d records, want %d: %v", len(r.Answer), tt.wantCount, r.Answer)
			}
			if soa, ok := r.Answer[0].(*dns.SOA); !ok || soa.Serial != 13 {
				t.Errorf("first record %v, want the current SOA", r.Answer[0])
			}
			if tt.wantIncr {
				if soa, ok := r.Answer[1].(*dns.SOA); !ok || soa.Serial != tt.serial {
					t.Errorf("second record %v, want the client's SOA", r.Answer[1])
				}
			}
		})
	}
}

func TestIXFROverUDPTooBig(t *testing.T) {
	s, _ := journaled(t, Config{})
	s.Update(14, append(testRecords(), bigRRset("big.sg.localhost.", 20)...))
	m := query("sg.localhost.", dns.TypeIXFR)
	m.Ns = []dns.RR{&dns.SOA{Hdr: header("sg.localhost.", dns.TypeSOA, 0), Ns: "ns1.sg.localhost.", Mbox: "h.sg.localhost.", Serial: 13}}
	m.SetEdns0(4096, false)
	r := exchange(t, s, "udp", m)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.SOA).Serial != 14 {
		t.Fatalf("answer %v, want the current SOA alone (RFC 1995 2)", r.Answer)
	}
	rrs, err := ixfrIn(t, s, 13)
	if err != nil || len(rrs) < 20 {
		t.Fatalf("the same IXFR over TCP: %d records, %v; want the changes", len(rrs), err)
	}
}

func TestIXFRRefused(t *testing.T) {
	s := newTestServer(t, Config{AllowTransfer: []string{"10.0.0.0/8"}})
	for _, network := range []string{"udp", "tcp"} {
		m := query("sg.localhost.", dns.TypeIXFR)
		m.Ns = []dns.RR{&dns.SOA{Hdr: header("sg.localhost.", dns.TypeSOA, 0), Ns: "ns1.sg.localhost.", Mbox: "h.sg.localhost.", Serial: 1}}
		r := exchange(t, s, network, m)
		if r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 {
			t.Errorf("%s IXFR from a peer not in allow_transfer: %s %v, want REFUSED and no records", network, dns.RcodeToString[r.Rcode], r.Answer)
		}
	}
}

func TestJournalBounds(t *testing.T) {
	t.Run("JournalSize changes", func(t *testing.T) {
		s, _ := journaled(t, Config{JournalSize: 2})
		for from, wantIncr := range map[uint32]bool{10: false, 11: true, 12: true} {
			rrs, err := ixfrIn(t, s, from)
			if err != nil {
				t.Fatalf("IXFR from %d: %v", from, err)
			}
			soa, incr := rrs[1].(*dns.SOA)
			incr = incr && soa.Serial == from
			if incr != wantIncr {
				t.Errorf("IXFR from %d incremental: %v, want %v", from, incr, wantIncr)
			}
		}
	})
	t.Run("never larger than the zone", func(t *testing.T) {
		s, _ := journaled(t, Config{})
		s.Update(14, append(testRecords(), bigRRset("big.sg.localhost.", 20)...)) // larger than the zone before
		s.Update(15, testRecords())                                               // removes 20 records again
		rrs, err := ixfrIn(t, s, 14)
		if err != nil {
			t.Fatalf("IXFR: %v", err)
		}
		if soa, ok := rrs[1].(*dns.SOA); ok && soa.Serial == 14 {
			t.Errorf("IXFR from 14 answered with %d changed records, more than the %d of the zone: want the full zone", len(rrs), 1+1+len(testRecords())+1)
		}
	})
}

func TestGlueAndTimers(t *testing.T) {
	s := newTestServer(t, Config{
		Nameservers:         []string{"ns1.sg.localhost", "ns2.sg.localhost", "ns.example.net"},
		NameserverAddresses: map[string][]string{"NS1.sg.localhost.": {"192.0.2.53", "2001:db8::53"}, "ns2.sg.localhost": {"198.51.100.53"}},
		BounceMX:            "MX.sg.localhost", BounceMXAddresses: []string{"192.0.2.25"},
		Refresh: 30 * time.Minute, Retry: 5 * time.Minute, Expire: 7 * 24 * time.Hour, Minimum: time.Minute,
	})
	r := exchange(t, s, "udp", query("sg.localhost.", dns.TypeSOA))
	soa := r.Answer[0].(*dns.SOA)
	if soa.Refresh != 1800 || soa.Retry != 300 || soa.Expire != 604800 || soa.Minttl != 60 {
		t.Errorf("SOA timers %d %d %d %d, want 1800 300 604800 60", soa.Refresh, soa.Retry, soa.Expire, soa.Minttl)
	}
	r = exchange(t, s, "udp", query("nope.sg.localhost.", dns.TypeA))
	if ttl := r.Ns[0].Header().Ttl; ttl != 60 {
		t.Errorf("negative-caching TTL %d, want soa_minimum 60", ttl)
	}
	r = exchange(t, s, "tcp", query("sg.localhost.", dns.TypeNS))
	var glue []string
	for _, rr := range r.Extra {
		glue = append(glue, rr.Header().Name+" "+dns.TypeToString[rr.Header().Rrtype])
	}
	slices.Sort(glue)
	// ns1 also gets 127.0.0.1 from testRecords.
	if want := []string{"ns1.sg.localhost. A", "ns1.sg.localhost. A", "ns1.sg.localhost. AAAA", "ns2.sg.localhost. A"}; !slices.Equal(glue, want) {
		t.Errorf("NS additional section %v, want %v", glue, want)
	}
	r = exchange(t, s, "udp", query(bounce, dns.TypeMX))
	if len(r.Extra) != 1 || !r.Extra[0].(*dns.A).A.Equal(net.ParseIP("192.0.2.25")) {
		t.Errorf("MX additional section %v, want the bounce_mx address", r.Extra)
	}
	r = exchange(t, s, "udp", query("mx.sg.localhost.", dns.TypeA))
	if len(r.Answer) != 1 || r.Answer[0].Header().Ttl != DefaultTTL {
		t.Errorf("bounce_mx A: %v", r.Answer)
	}
	// The configured records survive every Update.
	s.Update(s.Serial()+1, nil)
	if r := exchange(t, s, "udp", query("ns2.sg.localhost.", dns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("glue gone after an Update: %v", r.Answer)
	}
}

func TestAddressConfigErrors(t *testing.T) {
	ns := []string{"ns1.sg.localhost", "ns.example.net"}
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "glue for a name that is not a nameserver", cfg: Config{NameserverAddresses: map[string][]string{"ns9.sg.localhost": {"192.0.2.1"}}}},
		{name: "glue for an out-of-zone nameserver", cfg: Config{NameserverAddresses: map[string][]string{"ns.example.net": {"192.0.2.1"}}}},
		{name: "bad glue address", cfg: Config{NameserverAddresses: map[string][]string{"ns1.sg.localhost": {"192.0.2"}}}},
		{name: "bounce_mx addresses for an out-of-zone bounce_mx", cfg: Config{BounceMX: "mx.example.net", BounceMXAddresses: []string{"192.0.2.1"}}},
		{name: "bounce_mx addresses without bounce_mx", cfg: Config{BounceMXAddresses: []string{"192.0.2.1"}}},
		{name: "bad bounce_mx address", cfg: Config{BounceMX: "mx.sg.localhost", BounceMXAddresses: []string{"mx"}}},
		{name: "bad notify target", cfg: Config{Notify: []string{"192.0.2.1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Zone, tt.cfg.Nameservers = testZone, ns
			if _, err := New(tt.cfg); err == nil {
				t.Fatalf("New(%+v) succeeded", tt.cfg)
			}
		})
	}
}
