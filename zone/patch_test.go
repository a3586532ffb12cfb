package zone

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// domainRecords are the records one customer domain with token tok puts in
// the zone: DKIM TXT, bounce MX and SPF, DMARC TXT. TTL zero: the zone's.
func domainRecords(tok string, key string) []dns.RR {
	return []dns.RR{
		TXT("sg1."+tok+".dkim.sg.localhost", 0, key),
		MX(tok+".bounce.sg.localhost", 0, 10, "mx.sg.localhost"),
		TXT(tok+".bounce.sg.localhost", 0, "v=spf1 ip4:192.0.2.25 -all"),
		TXT(tok+".dmarc.sg.localhost", 0, "v=DMARC1; p=none"),
	}
}

// baseRecords is the zone patched in these tests: the test records, two
// domains and a deep name whose ancestors are empty non-terminals.
func baseRecords() []dns.RR {
	rrs := testRecords()
	rrs = append(rrs, domainRecords("tokenaaaaa", longValue)...)
	rrs = append(rrs, domainRecords("tokenbbbbb", "v=DKIM1; k=ed25519; p=bbbb")...)
	return append(rrs, TXT("a.b.c.deep.sg.localhost", 0, "deep"))
}

// handlerServer returns a server (not listening) for testZone with
// transfers allowed from 127.0.0.1, notifying nobody.
func handlerServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	cfg.Zone, cfg.AllowTransfer = testZone, []string{"127.0.0.1"}
	if cfg.Nameservers == nil {
		cfg.Nameservers = []string{"ns1.sg.localhost"}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serve sends r to s.ServeDNS as if over TCP from 127.0.0.1 and returns the
// response messages.
func serve(s *Server, r *dns.Msg) []*dns.Msg {
	w := &recordingWriter{remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5300}}
	s.ServeDNS(w, r)
	return w.msgs
}

// zoneRecords returns every record an AXFR of s carries, SOA excluded, as
// presentation forms.
func zoneRecords(t *testing.T, s *Server) zoneSet {
	t.Helper()
	var rrs []dns.RR
	for _, m := range serve(s, query("sg.localhost.", dns.TypeAXFR)) {
		rrs = append(rrs, m.Answer...)
	}
	if len(rrs) < 2 || rrs[0].Header().Rrtype != dns.TypeSOA || rrs[len(rrs)-1].Header().Rrtype != dns.TypeSOA {
		t.Fatalf("AXFR not framed by the SOA: %v", rrs)
	}
	if rrs[1].Header().Rrtype != dns.TypeNS {
		t.Errorf("AXFR: second record %v, want the apex NS", rrs[1])
	}
	set := zoneSet{}
	for _, rr := range rrs[1 : len(rrs)-1] {
		if set[rr.String()] {
			t.Errorf("AXFR carries %v twice", rr)
		}
		set[rr.String()] = true
	}
	return set
}

// answers describes what s answers for every name in names (and their
// ancestors) and a few types: rcode, then the answer records sorted.
func answers(s *Server, names []string) map[string]string {
	qnames := map[string]bool{"sg.localhost.": true, "nothere.sg.localhost.": true}
	for _, n := range names {
		for off, end := 0, false; !end; off, end = dns.NextLabel(n, off) {
			if dns.IsSubDomain("sg.localhost.", n[off:]) {
				qnames[n[off:]] = true
			}
		}
		qnames["below."+n] = true
	}
	out := map[string]string{}
	for qname := range qnames {
		for _, qt := range []uint16{dns.TypeTXT, dns.TypeMX, dns.TypeA, dns.TypeANY} {
			r := serve(s, query(qname, qt))[0]
			var rrs []string
			for _, rr := range append(r.Answer, r.Extra...) {
				rrs = append(rrs, rr.String())
			}
			slices.Sort(rrs)
			out[qname+" "+dns.TypeToString[qt]] = fmt.Sprintf("%s AA=%v %v", dns.RcodeToString[r.Rcode], r.Authoritative, rrs)
		}
	}
	return out
}

// ixfrFrom returns the IXFR answer of s from serial: the records of each
// part (between SOAs) as sets, the SOA serials in order.
func ixfrFrom(t *testing.T, s *Server, serial uint32) (serials []uint32, parts []zoneSet) {
	t.Helper()
	m := new(dns.Msg)
	m.SetIxfr("sg.localhost.", serial, "ns1.sg.localhost.", "hostmaster.sg.localhost.")
	for _, msg := range serve(s, m) {
		for _, rr := range msg.Answer {
			if soa, ok := rr.(*dns.SOA); ok {
				serials = append(serials, soa.Serial)
				parts = append(parts, zoneSet{})
				continue
			}
			parts[len(parts)-1][rr.String()] = true
		}
	}
	return serials, parts
}

func names(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr != nil {
			out = append(out, dns.Fqdn(strings.ToLower(rr.Header().Name)))
		}
	}
	return out
}

func TestPatchEqualsUpdate(t *testing.T) {
	base := baseRecords()
	newDomain := domainRecords("tokenccccc", "v=DKIM1; k=ed25519; p=cccc")
	domainA := domainRecords("tokenaaaaa", longValue)
	rotated := TXT("sg1.tokenbbbbb.dkim.sg.localhost", 0, "v=DKIM1; k=ed25519; p=rotated")
	tests := []struct {
		name           string
		deleted, added []dns.RR
		full           []dns.RR // the zone after the change, as Update gets it
		wantChange     bool
	}{
		{name: "domain added (new empty non-terminal)", added: newDomain, full: append(slices.Clone(base), newDomain...), wantChange: true},
		{name: "domain deleted (its empty non-terminal goes)", deleted: domainA,
			full: slices.Concat(testRecords(), domainRecords("tokenbbbbb", "v=DKIM1; k=ed25519; p=bbbb"), []dns.RR{TXT("a.b.c.deep.sg.localhost", 0, "deep")}), wantChange: true},
		{name: "DKIM key rotated", deleted: []dns.RR{TXT("sg1.tokenbbbbb.dkim.sg.localhost", 0, "v=DKIM1; k=ed25519; p=bbbb")}, added: []dns.RR{rotated},
			full: append(slices.DeleteFunc(slices.Clone(base), func(rr dns.RR) bool {
				return rr.Header().Name == "sg1.tokenbbbbb.dkim.sg.localhost."
			}), rotated), wantChange: true},
		{name: "deep name deleted: three empty non-terminals go", deleted: []dns.RR{TXT("A.B.C.DEEP.sg.localhost.", 300, "deep")},
			full: base[:len(base)-1], wantChange: true},
		{name: "record below a leaf added: the leaf keeps its records", added: []dns.RR{TXT("x.sg1.tokenaaaaa.dkim.sg.localhost", 60, "below")},
			full: append(slices.Clone(base), TXT("x.sg1.tokenaaaaa.dkim.sg.localhost", 60, "below")), wantChange: true},
		{name: "TTL changed", deleted: []dns.RR{TXT("tokenaaaaa.dmarc.sg.localhost", 0, "v=DMARC1; p=none")}, added: []dns.RR{TXT("tokenaaaaa.dmarc.sg.localhost", 60, "v=DMARC1; p=none")},
			full: append(slices.DeleteFunc(slices.Clone(base), func(rr dns.RR) bool {
				return rr.Header().Name == "tokenaaaaa.dmarc.sg.localhost."
			}), TXT("tokenaaaaa.dmarc.sg.localhost", 60, "v=DMARC1; p=none")), wantChange: true},
		{name: "delete of a record not served: no change", deleted: []dns.RR{TXT("nothere.sg.localhost", 0, "x"), TXT(dkimName, 300, "other value")}, full: base},
		{name: "add of a served record (zone TTL spelled out, upper case): no change", added: []dns.RR{MX("TOKENAAAAA.bounce.sg.localhost", DefaultTTL, 10, "mx.sg.localhost")}, full: base},
		{name: "deleted and added again: no change", deleted: domainA, added: domainA, full: base},
		{name: "generated records are not deleted", deleted: []dns.RR{A("mx.sg.localhost", 0, net.ParseIP("192.0.2.25"))}, full: base},
		{name: "records that do not belong are skipped", added: []dns.RR{
			TXT("outside.example.com", 0, "x"), nil,
			&dns.NS{Hdr: header("sub.sg.localhost", dns.TypeNS, 0), Ns: "evil.example."},
			&dns.SOA{Hdr: header("sg.localhost", dns.TypeSOA, 0), Serial: 99},
		}, full: base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{BounceMX: "mx.sg.localhost", BounceMXAddresses: []string{"192.0.2.25"}}
			patched, updated := handlerServer(t, cfg), handlerServer(t, cfg)
			patched.Update(10, base)
			updated.Update(10, base)
			before := zoneRecords(t, patched)
			gotSerial := patched.Patch(11, tt.deleted, tt.added)
			wantSerial := updated.Update(11, tt.full)
			if gotSerial != wantSerial {
				t.Fatalf("Patch gave serial %d, Update %d", gotSerial, wantSerial)
			}
			if changed := gotSerial != 10; changed != tt.wantChange {
				t.Fatalf("serial %d: changed %v, want %v", gotSerial, changed, tt.wantChange)
			}
			got, want := zoneRecords(t, patched), zoneRecords(t, updated)
			if !maps.Equal(got, want) {
				t.Errorf("AXFR after Patch differs from AXFR after Update:\n got %v\nwant %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
			}
			universe := names(slices.Concat(base, tt.deleted, tt.added, tt.full))
			if got, want := answers(patched, universe), answers(updated, universe); !maps.Equal(got, want) {
				for k := range want {
					if got[k] != want[k] {
						t.Errorf("%s: Patch answers %s, Update %s", k, got[k], want[k])
					}
				}
			}
			gotSerials, gotParts := ixfrFrom(t, patched, 10)
			wantSerials, wantParts := ixfrFrom(t, updated, 10)
			if !slices.Equal(gotSerials, wantSerials) || !slices.EqualFunc(gotParts, wantParts, maps.Equal) {
				t.Errorf("IXFR from 10 after Patch: serials %v parts %v\nafter Update: serials %v parts %v", gotSerials, gotParts, wantSerials, wantParts)
			}
			if tt.wantChange {
				if applied := applyIXFR(t, before, flatten(t, patched, 10)); !maps.Equal(applied, got) {
					t.Errorf("the zone at 10 plus the IXFR differs from the AXFR at 11")
				}
			}
			if got := patched.records(); got != len(want) {
				t.Errorf("record count %d, want %d (the AXFR's)", got, len(want))
			}
		})
	}
}

// flatten returns every record of the IXFR of s from serial.
func flatten(t *testing.T, s *Server, serial uint32) []dns.RR {
	t.Helper()
	m := new(dns.Msg)
	m.SetIxfr("sg.localhost.", serial, "ns1.sg.localhost.", "hostmaster.sg.localhost.")
	var rrs []dns.RR
	for _, msg := range serve(s, m) {
		rrs = append(rrs, msg.Answer...)
	}
	return rrs
}

// records returns the served record count (the SOA excluded).
func (s *Server) records() int { return s.data.Load().records }

// TestPatchSequence applies random changes by Patch to one server and by
// Update of the whole resulting set to another: after every step both
// serve the same records, the same answers (NXDOMAIN or NODATA for every
// ancestor), and an IXFR from any earlier serial replays onto the AXFR.
func TestPatchSequence(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pool := []dns.RR{}
	for _, tok := range []string{"aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"} {
		pool = append(pool, domainRecords(tok, "v=DKIM1; k=ed25519; p="+tok)...)
	}
	pool = append(pool,
		TXT("x.y.deep.sg.localhost", 0, "1"), TXT("y.deep.sg.localhost", 0, "2"), TXT("z.x.y.deep.sg.localhost", 0, "3"),
		TXT("sg.localhost", 0, "apex text"), A(trackName, 0, net.ParseIP("192.0.2.10")), A(trackName, 60, net.ParseIP("192.0.2.10")))
	patched, updated := handlerServer(t, Config{}), handlerServer(t, Config{})
	served := map[int]bool{}
	full := func() []dns.RR {
		var rrs []dns.RR
		for i := range pool {
			if served[i] {
				rrs = append(rrs, pool[i])
			}
		}
		return rrs
	}
	patched.Update(1, nil)
	updated.Update(1, nil)
	history := map[uint32]zoneSet{1: zoneRecords(t, patched)}
	replayed := 0
	for step := range 60 {
		var deleted, added []dns.RR
		for range 1 + rng.IntN(4) {
			i := rng.IntN(len(pool))
			if rng.IntN(2) == 0 {
				deleted = append(deleted, pool[i])
				served[i] = false
			} else {
				added = append(added, pool[i])
				served[i] = true
			}
		}
		// A record both deleted and added ends as the later list says:
		// Patch applies deletions first, so re-add what the step added.
		for _, rr := range added {
			served[slices.Index(pool, rr)] = true
		}
		serial := uint32(step + 2)
		got, want := patched.Patch(serial, deleted, added), updated.Update(serial, full())
		if got != want {
			t.Fatalf("step %d: Patch serial %d, Update serial %d", step, got, want)
		}
		zone := zoneRecords(t, patched)
		if want := zoneRecords(t, updated); !maps.Equal(zone, want) {
			t.Fatalf("step %d: AXFR after Patch %v, after Update %v", step, slices.Sorted(maps.Keys(zone)), slices.Sorted(maps.Keys(want)))
		}
		if g, w := answers(patched, names(pool)), answers(updated, names(pool)); !maps.Equal(g, w) {
			for k := range w {
				if g[k] != w[k] {
					t.Errorf("step %d: %s: Patch answers %s, Update %s", step, k, g[k], w[k])
				}
			}
			t.FailNow()
		}
		history[got] = zone
		for from, old := range history {
			if from == got {
				continue
			}
			rrs := flatten(t, patched, from)
			if soa, ok := rrs[1].(*dns.SOA); !ok || soa.Serial != from {
				continue // dropped from the journal: a full zone, also correct
			}
			if applied := applyIXFR(t, old, rrs); !maps.Equal(applied, zone) {
				t.Fatalf("step %d: zone at %d plus IXFR differs from the AXFR at %d", step, from, got)
			}
			replayed++
		}
	}
	if replayed < 100 {
		t.Errorf("only %d incremental IXFR answers replayed", replayed)
	}
}

func TestPatchSerial(t *testing.T) {
	extra := []dns.RR{TXT("sg2.klmnopqrst.dkim.sg.localhost", 0, "v=DKIM1; k=ed25519; p=abc")}
	tests := []struct {
		name           string
		start, serial  uint32
		deleted, added []dns.RR
		want           uint32
	}{
		{name: "change: given serial", start: 10, serial: 15, added: extra, want: 15},
		{name: "no change, newer version: serial kept", start: 10, serial: 11, added: testRecords()[:2], want: 10},
		{name: "empty patch: serial kept", start: 10, serial: 11, want: 10},
		{name: "given serial older: current+1", start: 10, serial: 9, deleted: testRecords()[:1], want: 11},
		{name: "given serial equal: current+1", start: 10, serial: 10, added: extra, want: 11},
		{name: "wraps around (RFC 1982)", start: 0xfffffff0, serial: 3, added: extra, want: 3},
		{name: "2^31 ahead is not greater", start: 10, serial: 10 + 1<<31, added: extra, want: 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := handlerServer(t, Config{})
			s.Update(tt.start, testRecords())
			if got := s.Patch(tt.serial, tt.deleted, tt.added); got != tt.want {
				t.Errorf("Patch returned %d, want %d", got, tt.want)
			}
			r := serve(s, query("sg.localhost.", dns.TypeSOA))[0]
			if got := r.Answer[0].(*dns.SOA).Serial; got != tt.want {
				t.Errorf("SOA serial %d, want %d", got, tt.want)
			}
		})
	}
	t.Run("first change takes the serial as given", func(t *testing.T) {
		s := handlerServer(t, Config{})
		if got := s.Patch(0, nil, extra); got != 0 {
			t.Errorf("Patch on a fresh zone: serial %d, want 0 as given", got)
		}
		if r := serve(s, query(extra[0].Header().Name, dns.TypeTXT))[0]; len(r.Answer) != 1 {
			t.Errorf("record added by the first Patch not served: %v", r)
		}
	})
}

func TestPatchNotify(t *testing.T) {
	sec := newSecondary(t, ack)
	s := notifyServer(t, sec, 3, 2*time.Second)
	s.Update(7, testRecords())
	eventually(t, "the NOTIFY of the load", func() bool { return s.metrics.notifySent.Load() == 1 })
	s.Patch(8, nil, testRecords()) // nothing new
	s.Patch(8, []dns.RR{TXT("nothere.sg.localhost", 0, "x")}, nil)
	s.Patch(8, nil, []dns.RR{TXT("new.sg.localhost", 0, "x")})
	eventually(t, "the NOTIFY of the patch", func() bool { return s.metrics.notifySent.Load() == 2 })
	got := sec.notifies()
	if len(got) != 2 || notifySerial(t, got[1]) != 8 {
		t.Fatalf("secondary got %d NOTIFYs, want two, the second with serial 8 (patches without change send none)", len(got))
	}
}

// A patch copies only the shards holding the names it touches; the rest
// of the zone is shared with the previous snapshot, which queries may still
// be reading.
func TestPatchCopiesOnlyTouchedShards(t *testing.T) {
	s := handlerServer(t, Config{})
	var rrs []dns.RR
	for i := range 2000 {
		rrs = append(rrs, domainRecords(fmt.Sprintf("tok%07d", i), "v=DKIM1; k=ed25519; p=x")...)
	}
	s.Update(1, rrs)
	before := s.data.Load()
	s.Patch(2, domainRecords("tok0000007", "v=DKIM1; k=ed25519; p=x"), domainRecords("tokzzzzzzz", "v=DKIM1; k=ed25519; p=y"))
	after := s.data.Load()
	changed := 0
	for b := range numShards {
		if after.shards.get(b) != before.shards.get(b) {
			changed++
		}
	}
	// Per domain 3 owner names and 1 empty non-terminal, and their
	// parents dkim., bounce., dmarc.: at most 14 shards.
	if changed == 0 || changed > 14 {
		t.Errorf("%d shards replaced by a patch of two domains, want 1 to 14", changed)
	}
	if r := serve(s, query("tok0000007.dkim.sg.localhost.", dns.TypeTXT))[0]; r.Rcode != dns.RcodeNameError {
		t.Errorf("empty non-terminal of the deleted domain: %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	if r := serve(s, query("tokzzzzzzz.dkim.sg.localhost.", dns.TypeTXT))[0]; r.Rcode != dns.RcodeSuccess || len(r.Ns) != 1 {
		t.Errorf("empty non-terminal of the added domain: %v, want NODATA", r)
	}
}

func TestConcurrentPatches(t *testing.T) {
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
			rrs := domainRecords(fmt.Sprintf("tok%07d", i%50), "v=DKIM1; k=ed25519; p=x")
			if i%2 == 0 {
				s.Patch(uint32(i+2), nil, rrs)
			} else {
				s.Patch(uint32(i+2), rrs, nil)
			}
		}
	})
	for range 50 {
		r := exchange(t, s, "udp", query(dkimName, dns.TypeTXT))
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("stable record missing during patches: %v", r)
		}
	}
	close(stop)
	wg.Wait()
}

// Every kind of record is served, transferred and patched as given,
// whichever form the zone keeps it in.
func TestRecordKinds(t *testing.T) {
	mustRR := func(s string) dns.RR {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return rr
	}
	rrs := []dns.RR{
		TXT("txt.sg.localhost", 0, longValue+`\"; `),
		TXT("txt.sg.localhost", 60, ""),
		MX("mx1.sg.localhost", 120, 5, "MX.Example.NET"),
		A("a.sg.localhost", 0, net.ParseIP("192.0.2.7")),
		A("a.sg.localhost", 0, net.ParseIP("2001:db8::7")),
		mustRR("srv.sg.localhost. 300 IN SRV 10 20 25 mx.sg.localhost."),
		mustRR("caa.sg.localhost. 300 IN CAA 0 issue \"letsencrypt.org\""),
		mustRR("cn.sg.localhost. 300 IN CNAME target.example.net."),
		&dns.RFC3597{Hdr: dns.RR_Header{Name: "raw.sg.localhost.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 30}, Rdata: "0161"},
	}
	s := handlerServer(t, Config{})
	s.Update(1, rrs)
	for _, rr := range rrs {
		h := rr.Header()
		want := s.served(rr, strings.ToUpper(h.Name)).String()
		r := serve(s, query(strings.ToUpper(h.Name), h.Rrtype))[0]
		found := false
		for _, got := range r.Answer {
			found = found || got.String() == want
		}
		if !found {
			t.Errorf("%s: answer %v, want %s", h.Name, r.Answer, want)
		}
	}
	axfr := zoneRecords(t, s)
	for _, rr := range rrs {
		if want := s.servedOwn1(rr).String(); !axfr[want] {
			t.Errorf("AXFR lacks %s", want)
		}
	}
	if got := s.Patch(2, rrs[4:6], nil); got != 2 {
		t.Fatalf("Patch deleting AAAA and SRV: serial %d, want 2", got)
	}
	if r := serve(s, query("srv.sg.localhost.", dns.TypeSRV))[0]; r.Rcode != dns.RcodeNameError {
		t.Errorf("SRV after its deletion: %v", r)
	}
	if r := serve(s, query("a.sg.localhost.", dns.TypeANY))[0]; len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeA {
		t.Errorf("a.sg.localhost after deleting its AAAA: %v", r.Answer)
	}
	if s.Update(3, append(slices.Clone(rrs[:4]), rrs[6:]...)) != 2 {
		t.Error("Update with the patched set changed the zone")
	}
}

// TestSharedValuesPatch: records with the same data share their strings
// inside a shard (the same key, SPF, MX and DMARC for thousands of
// domains, so that many share shards); deleting some of them and adding
// others with the same values gives the zone a full Update of the result
// gives.
func TestSharedValuesPatch(t *testing.T) {
	keys := []string{"v=DKIM1; k=ed25519; p=one", longValue, "v=DKIM1; k=ed25519; p=three"}
	domain := func(i int) []dns.RR { return domainRecords(fmt.Sprintf("tok%05d", i), keys[i%len(keys)]) }
	var base, deleted, added, full []dns.RR
	for i := range 3000 {
		base = append(base, domain(i)...)
		if i%3 == 1 {
			deleted = append(deleted, domain(i)...)
		} else {
			full = append(full, domain(i)...)
		}
	}
	for i := 3000; i < 4000; i++ {
		added = append(added, domain(i)...)
		full = append(full, domain(i)...)
	}
	cfg := Config{BounceMX: "mx.sg.localhost", BounceMXAddresses: []string{"192.0.2.25"}}
	patched, updated := handlerServer(t, cfg), handlerServer(t, cfg)
	patched.Update(10, base)
	patched.Patch(11, deleted, added)
	updated.Update(11, full)
	got, want := zoneRecords(t, patched), zoneRecords(t, updated)
	if !maps.Equal(got, want) {
		t.Fatalf("AXFR after Patch (%d records) differs from AXFR after Update (%d records)", len(got), len(want))
	}
	var sample []string // answers for some names kept, deleted and added
	for _, rr := range slices.Concat(full, deleted) {
		if len(sample) < 200 && nameHash(rr.Header().Name)%37 == 0 {
			sample = append(sample, rr.Header().Name)
		}
	}
	if got, want := answers(patched, sample), answers(updated, sample); !maps.Equal(got, want) {
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("%s: Patch answers %s, Update %s", k, got[k], want[k])
			}
		}
	}
}
