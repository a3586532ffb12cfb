package zone

import (
	"encoding/base64"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Benchmarks of a provider zone at scale: go test -run '^$' -bench . ./zone/
// (-short leaves out the 1M-domain sizes, whose setup takes a while).

// syntheticDomains returns the zone records of n customer domains as
// domains.ZoneRecordsFromRows makes them: per domain a DKIM TXT (keyBytes of
// public key, base64, as Ed25519 (32) or RSA-2048 (294) keys give), the
// bounce MX and SPF TXT, and for three domains in four a DMARC TXT. Each
// returned domain's first record is its DKIM TXT.
func syntheticDomains(n, keyBytes int, seed uint64) [][]dns.RR {
	rng := rand.New(rand.NewPCG(seed, 42))
	alg := "ed25519"
	if keyBytes > 32 {
		alg = "rsa"
	}
	key := make([]byte, keyBytes)
	out := make([][]dns.RR, n)
	for i := range out {
		for j := range key {
			key[j] = byte(rng.Uint32())
		}
		tok := benchToken(seed, i)
		bounce := tok + ".bounce.sg.localhost."
		rrs := []dns.RR{
			TXT("sg1."+tok+".dkim.sg.localhost.", 0, "v=DKIM1; k="+alg+"; p="+base64.StdEncoding.EncodeToString(key)),
			MX(bounce, 0, 10, "mx.sg.localhost"),
			TXT(bounce, 0, "v=spf1 ip4:192.0.2.25 -all"),
		}
		if i%4 != 3 {
			rrs = append(rrs, TXT(tok+".dmarc.sg.localhost.", 0, "v=DMARC1; p=quarantine; pct=50; rua=mailto:dmarc-"+tok+"@example.com"))
		}
		out[i] = rrs
	}
	return out
}

// benchToken is the registration token of domain i: 16 base32 characters.
func benchToken(seed uint64, i int) string {
	x := uint64(i)*0x9e3779b97f4a7c15 ^ seed<<40
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	t := strconv.FormatUint(x, 32)
	return strings.Repeat("a", max(0, 16-len(t))) + t[max(0, len(t)-16):]
}

func flattenDomains(ds [][]dns.RR) []dns.RR {
	out := make([]dns.RR, 0, 4*len(ds))
	for _, d := range ds {
		out = append(out, d...)
	}
	return out
}

func benchServer(tb testing.TB) *Server {
	s, err := New(Config{Zone: testZone, Nameservers: []string{"ns1.sg.localhost", "ns2.sg.localhost"},
		NameserverAddresses: map[string][]string{"ns1.sg.localhost": {"192.0.2.53"}, "ns2.sg.localhost": {"192.0.2.54"}},
		BounceMX:            "mx.sg.localhost", BounceMXAddresses: []string{"192.0.2.25"},
		AllowTransfer: []string{"127.0.0.1"}})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

type benchSize struct {
	name     string
	domains  int
	keyBytes int
}

var benchSizes = []benchSize{
	{name: "100k/ed25519", domains: 100_000, keyBytes: 32},
	{name: "100k/rsa2048", domains: 100_000, keyBytes: 294},
	{name: "1M/ed25519", domains: 1_000_000, keyBytes: 32},
	{name: "1M/rsa2048", domains: 1_000_000, keyBytes: 294},
}

func skipLarge(b *testing.B, size benchSize) {
	if size.domains >= 1_000_000 && testing.Short() {
		b.Skip("1M domains: not with -short")
	}
}

// heapMB returns the live heap after a full collection, in MiB.
func heapMB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

// rssMB returns the process's resident set size in MiB (Linux), or 0.
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return float64(kb) / 1024
		}
	}
	return 0
}

// valueMB is the size of the TXT values of rrs in MiB: in the daemon they
// are shared with the loader's domain rows, not held by the zone alone.
func valueMB(rrs []dns.RR) float64 {
	n := 0
	for _, rr := range rrs {
		if txt, ok := rr.(*dns.TXT); ok && !strings.HasPrefix(txt.Txt[0], "v=spf1") {
			for _, s := range txt.Txt {
				n += len(s)
			}
		}
	}
	return float64(n) / (1 << 20)
}

// BenchmarkUpdateFull is the cold start: a full Update of an empty zone.
// heap-MB is the live heap the loaded zone holds (values included), of
// which values-MB are the TXT values the daemon shares with its rows.
func BenchmarkUpdateFull(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			skipLarge(b, size)
			base := heapMB()
			rrs := flattenDomains(syntheticDomains(size.domains, size.keyBytes, 1))
			values := valueMB(rrs)
			var s *Server
			var cpu time.Duration
			for b.Loop() {
				s = nil
				s = benchServer(b)
				c := cpuTime()
				s.Update(1, rrs)
				cpu += cpuTime() - c
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op") // on a shared machine, more telling than ns/op
			rrs = nil
			heap := heapMB() - base
			runtime.KeepAlive(s)
			b.ReportMetric(heap, "heap-MB")
			b.ReportMetric(values, "values-MB")
			b.ReportMetric(rssMB(), "rss-MB")
			b.ReportMetric(float64(s.records()), "records")
		})
	}
}

// BenchmarkUpdateReload is a full Update of a loaded zone in which one
// domain changed: the per-shard diff of a full reload.
func BenchmarkUpdateReload(b *testing.B) {
	for _, size := range benchSizes[:2] {
		b.Run(size.name, func(b *testing.B) {
			ds := syntheticDomains(size.domains+1, size.keyBytes, 1)
			with, without := flattenDomains(ds), flattenDomains(ds[:size.domains])
			s := benchServer(b)
			s.Update(1, with)
			serial := uint32(1)
			for b.Loop() {
				serial++
				if serial%2 == 0 {
					s.Update(serial, without)
				} else {
					s.Update(serial, with)
				}
			}
		})
	}
}

var (
	loadedMu sync.Mutex
	loaded   *loadedZone // the last one built: one at a time, as in a daemon
)

// loadedZone is a zone of size.domains synthetic domains, built for the
// benchmarks that only read it or patch it back and forth.
type loadedZone struct {
	size    string
	s       *Server
	domains [][]dns.RR
}

func loadedBench(b *testing.B, size benchSize) *loadedZone {
	skipLarge(b, size)
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if loaded != nil && loaded.size == size.name {
		return loaded
	}
	if loaded != nil {
		_ = loaded.s.Shutdown(b.Context())
		loaded = nil
	}
	ds := syntheticDomains(size.domains, size.keyBytes, 1)
	z := &loadedZone{size: size.name, s: benchServer(b), domains: ds}
	z.s.Update(1, flattenDomains(ds))
	loaded = z
	runtime.GC() // the garbage of the load is not the benchmark's
	return z
}

// percentile returns the p-th percentile of ds (sorted in place).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

// BenchmarkPatch adds one new domain's four records to a loaded zone and
// deletes them again, one Patch each (an admin write), journaled for IXFR.
func BenchmarkPatch(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			z := loadedBench(b, size)
			extra := syntheticDomains(64, size.keyBytes, 7)
			var lat []time.Duration
			i := 0
			cpu := cpuTime()
			for b.Loop() {
				d := extra[i/2%len(extra)]
				start := time.Now()
				serial := z.s.Serial() + 1
				if i%2 == 0 {
					z.s.Patch(serial, nil, d)
				} else {
					z.s.Patch(serial, d, nil)
				}
				lat = append(lat, time.Since(start))
				i++
			}
			// CPU of the whole process (garbage collection included): on a
			// shared machine, more telling than the wall-clock figures.
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
			b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
		})
	}
}

// discardWriter packs what ServeDNS writes, as the server would, and drops
// it.
type discardWriter struct{ recordingWriter }

func (w *discardWriter) WriteMsg(m *dns.Msg) error {
	_, err := m.Pack()
	return err
}

// BenchmarkServeDKIM answers TXT queries for existing DKIM names of a
// loaded zone through ServeDNS, packing the reply, as over UDP with EDNS.
func BenchmarkServeDKIM(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			z := loadedBench(b, size)
			rng := rand.New(rand.NewPCG(3, 4))
			queries := make([]*dns.Msg, 4096)
			for i := range queries {
				queries[i] = query(z.domains[rng.IntN(len(z.domains))][0].Header().Name, dns.TypeTXT)
				queries[i].SetEdns0(1232, false)
			}
			w := &discardWriter{recordingWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5300}}}
			var lat []time.Duration
			i := 0
			for b.Loop() {
				start := time.Now()
				z.s.ServeDNS(w, queries[i%len(queries)])
				lat = append(lat, time.Since(start))
				i++
			}
			b.ReportMetric(float64(percentile(lat, 0.99).Nanoseconds())/1000, "p99-µs")
		})
	}
}

// BenchmarkServeDKIMUDP is BenchmarkServeDKIM over loopback UDP: a real
// listener and client, one query at a time.
func BenchmarkServeDKIMUDP(b *testing.B) {
	for _, size := range []benchSize{benchSizes[1], benchSizes[3]} {
		b.Run(size.name, func(b *testing.B) {
			z := loadedBench(b, size)
			if z.s.UDPAddr() == nil {
				if err := z.s.Start("127.0.0.1:0"); err != nil {
					b.Fatal(err)
				}
			}
			c := &dns.Client{Net: "udp", UDPSize: 1232}
			conn, err := c.Dial(z.s.UDPAddr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			rng := rand.New(rand.NewPCG(5, 6))
			var lat []time.Duration
			for b.Loop() {
				m := query(z.domains[rng.IntN(len(z.domains))][0].Header().Name, dns.TypeTXT)
				m.SetEdns0(1232, false)
				start := time.Now()
				r, _, err := c.ExchangeWithConn(m, conn)
				lat = append(lat, time.Since(start))
				if err != nil || len(r.Answer) != 1 {
					b.Fatalf("query: %v %v", err, r)
				}
			}
			b.ReportMetric(float64(percentile(lat, 0.99).Nanoseconds())/1000, "p99-µs")
		})
	}
}

// TestSyntheticDomains checks the benchmark data is what it claims: record
// counts, value sizes and distinct names.
func TestSyntheticDomains(t *testing.T) {
	ds := syntheticDomains(1000, 294, 1)
	rrs := flattenDomains(ds)
	if n := len(rrs); n != 1000*3+750 {
		t.Errorf("%d records for 1000 domains, want 3750", n)
	}
	if l := len(strings.Join(ds[0][0].(*dns.TXT).Txt, "")); l < 400 || l > 420 {
		t.Errorf("RSA-sized DKIM value of %d bytes, want about 410", l)
	}
	if l := len(strings.Join(syntheticDomains(1, 32, 1)[0][0].(*dns.TXT).Txt, "")); l > 80 {
		t.Errorf("Ed25519-sized DKIM value of %d bytes", l)
	}
	s := handlerServer(t, Config{})
	s.Update(1, rrs)
	if got := s.records(); got != len(rrs)+1 {
		t.Errorf("zone holds %d records, want %d and the NS: names collide", got, len(rrs))
	}
	name := ds[500][0].Header().Name
	if r := serve(s, query(name, dns.TypeTXT))[0]; len(r.Answer) != 1 {
		t.Errorf("DKIM %s: %v", name, r)
	}
}
