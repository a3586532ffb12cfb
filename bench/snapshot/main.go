// Command snapshot measures, in one process linked with sendergate's
// packages, what the daemon does with its state at scale: the first full
// load of a seeded database into the policy snapshot and the provider zone
// (wired as serve wires them), the heap it leaves, the policy decision and
// AUTH check on that snapshot next to the same on a 10-domain database,
// and one write followed by the refresh that applies it (a password
// rotation, a new domain). It is the place to profile (-cpuprofile) what
// the daemon, which has no pprof listener, spends its time on.
//
//	snapshot -database sqlite:/tmp/sg/sendergate.db -orgs 100000 -domains 10 -cpuprofile load.pprof
//
// The writes change the database (one rotated password and up to -writes
// new domains per kind, in the last organizations).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/bench/internal/seeddb"
	"github.com/sendergate/sendergate/config"
	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/loader"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/zone"
)

const zoneName = "sg.localhost"

func main() {
	log.SetFlags(0)
	log.SetPrefix("snapshot: ")
	database := flag.String("database", "", "seeded database: sqlite:PATH or postgres://... (required)")
	orgs := flag.Int("orgs", 100000, "organizations seeded")
	perOrg := flag.Int("domains", 10, "sending domains per organization seeded")
	loadGOGC := flag.Int("load-gogc", 100, "GOGC during the full load (sendergate serve's is the process's, 100 by default)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the full load to this file (and of the writes to FILE.writes)")
	memprofile := flag.String("memprofile", "", "write a heap profile after the full load to this file")
	writes := flag.Int("writes", 20, "writes per kind, each followed by a refresh")
	flag.Parse()
	if *database == "" {
		log.Fatal("-database is required")
	}
	cfg := config.Config{Database: *database}
	driver, dsn, err := cfg.DatabaseDriver()
	if err != nil {
		log.Fatalf("-database: %v", err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, driver, dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	// The 10-domain baseline first, on a throw-away SQLite file.
	dir, err := os.MkdirTemp("", "sendergate-snapshot.")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	small := filepath.Join(dir, "small.db")
	if _, err := seeddb.Seed(ctx, "sqlite", small, seeddb.Options{Orgs: 1, DomainsPerOrg: 10, Keys: 1}); err != nil {
		log.Fatal(err)
	}
	sst, err := store.Open(ctx, "sqlite", small)
	if err != nil {
		log.Fatal(err)
	}
	base, _, _, err := load(ctx, sst, "", *loadGOGC)
	if err != nil {
		log.Fatal(err)
	}
	bs, err := base.Current()
	if err != nil {
		log.Fatal(err)
	}
	baseDecide, baseAuth := micro(bs, 1, 10, 1)
	sst.Close()

	e, z, took, err := load(ctx, st, *cpuprofile, *loadGOGC)
	if err != nil {
		log.Fatal(err)
	}
	runtime.GC()
	if *memprofile != "" {
		f, err := os.Create(*memprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			log.Fatal(err)
		}
		f.Close()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s, _ := e.Current()
	no, nd := s.Counts()
	fmt.Printf("\nin-process (bench/snapshot), %s: %d organizations, %d domains in the snapshot\n\n", driver, no, nd)
	fmt.Println("| figure | value |")
	fmt.Println("|---|---|")
	fmt.Printf("| full load: read + policy snapshot + zone (serve's wiring) | %.1f s |\n", took.Seconds())
	fmt.Printf("| live heap after the load (GC'd), zone serial %d | %.0f MiB (heap in use %.0f MiB, runtime metadata %.0f MiB, Sys %.0f MiB, RSS %s) |\n",
		z.Serial(), float64(ms.HeapAlloc)/(1<<20), float64(ms.HeapInuse)/(1<<20),
		float64(ms.MSpanSys+ms.GCSys+ms.OtherSys+ms.BuckHashSys+ms.MCacheSys)/(1<<20), float64(ms.Sys)/(1<<20), rss())
	dec, au := micro(s, *orgs, *perOrg, 1)
	decR, auR := micro(s, *orgs, *perOrg, 4096)
	fmt.Printf("| policy decision, 10-domain database | %.0f ns/op |\n", baseDecide)
	fmt.Printf("| policy decision, this database: one account / 4,096 accounts spread over it | %.0f / %.0f ns/op (%.1fx / %.1fx) |\n", dec, decR, dec/baseDecide, decR/baseDecide)
	fmt.Printf("| AUTH check, 10-domain database | %.0f ns/op |\n", baseAuth)
	fmt.Printf("| AUTH check, this database: one account / 4,096 accounts | %.0f / %.0f ns/op (%.1fx / %.1fx) |\n", au, auR, au/baseAuth, auR/baseAuth)

	if *writes > 0 {
		var stop func()
		if *cpuprofile != "" {
			stop = startProfile(*cpuprofile + ".writes")
		}
		rot, add := writesThenRefresh(ctx, st, e, *orgs, *writes)
		if stop != nil {
			stop()
		}
		fmt.Printf("| rotate password (store) + Refresh | %s |\n", rot)
		fmt.Printf("| add Ed25519 domain (domains.Service.Create) + Refresh, zone rebuilt | %s |\n", add)
	}
}

// load builds an engine and a zone server over st as serve does and
// times the first full load.
func load(ctx context.Context, st *store.Store, profile string, loadGOGC int) (*policy.Engine, *zone.Server, time.Duration, error) {
	z, err := zone.New(zone.Config{Zone: zoneName, Nameservers: []string{"ns1." + zoneName}, BounceMX: "mx." + zoneName})
	if err != nil {
		return nil, nil, 0, err
	}
	opts := domains.ZoneOptions{Zone: zoneName, BounceMX: "mx." + zoneName, SPF: "v=spf1 ip4:127.0.0.1 -all"}
	e := loader.NewEngine(st, zoneName, z, opts, policy.Options{})
	var stop func()
	if profile != "" {
		stop = startProfile(profile)
	}
	t := time.Now()
	gc := debug.SetGCPercent(loadGOGC)
	err = e.Reload(ctx)
	debug.SetGCPercent(gc)
	took := time.Since(t)
	debug.FreeOSMemory()
	if stop != nil {
		stop()
	}
	return e, z, took, err
}

// rss returns the process's resident set size from /proc/self/status.
func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb); err == nil {
				return fmt.Sprintf("%.0f MiB", kb/1024)
			}
		}
	}
	return "unknown"
}

func startProfile(path string) func() {
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// micro returns ns/op of Decide and Authenticate on s, cycling over
// spread accounts (1: always the first organization's).
func micro(s *policy.Snapshot, orgs, perOrg, spread int) (decide, auth float64) {
	type probe struct {
		acct       *policy.Account
		user, pass string
		from       string
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	probes := make([]probe, 0, spread)
	for k := 0; len(probes) < spread && k < 100*spread; k++ {
		i := 0
		if k > 0 {
			i = rnd.IntN(orgs)
		}
		// An earlier run of bench/scale may have rotated the password
		// or restricted the domain: such organizations are left out.
		a, err := s.Authenticate(seeddb.Username(i), seeddb.Password(i))
		from := "news@" + seeddb.DomainName(i, k%perOrg)
		if err != nil || !s.Decide(a, from).Allowed {
			continue
		}
		probes = append(probes, probe{a, seeddb.Username(i), seeddb.Password(i), from})
	}
	if len(probes) == 0 {
		log.Fatal("no seeded account with its seeded password and domain")
	}
	r := testing.Benchmark(func(b *testing.B) {
		n := 0
		for b.Loop() {
			p := &probes[n%len(probes)]
			n++
			if d := s.Decide(p.acct, p.from); !d.Allowed {
				log.Fatal(d.Message())
			}
		}
	})
	decide = float64(r.T.Nanoseconds()) / float64(r.N)
	r = testing.Benchmark(func(b *testing.B) {
		n := 0
		for b.Loop() {
			p := &probes[n%len(probes)]
			n++
			if _, err := s.Authenticate(p.user, p.pass); err != nil {
				log.Fatal(err)
			}
		}
	})
	auth = float64(r.T.Nanoseconds()) / float64(r.N)
	return decide, auth
}

// writesThenRefresh times n password rotations and n domain additions in
// the last organizations, each followed by the engine's Refresh (what the
// admin API does before answering).
func writesThenRefresh(ctx context.Context, st *store.Store, e *policy.Engine, orgs, n int) (rot, add string) {
	var tr, ta []time.Duration
	svc := domains.NewService(st, domains.ServiceOptions{Zone: zoneName})
	for k := range n {
		i := orgs - 1 - k%orgs
		o, err := st.OrgByName(ctx, seeddb.OrgName(i))
		if err != nil {
			log.Fatal(err)
		}
		// The profile tells the two apart: go tool pprof -tagfocus write=rotate.
		pprof.Do(ctx, pprof.Labels("write", "rotate"), func(ctx context.Context) {
			t := time.Now()
			if err := st.SetAccountPassword(ctx, o.ID, seeddb.AccountName, policy.HashPassword(seeddb.Password(i)), store.At(time.Now())); err != nil {
				log.Fatal(err)
			}
			if err := e.Refresh(ctx); err != nil {
				log.Fatal(err)
			}
			tr = append(tr, time.Since(t))
		})
		pprof.Do(ctx, pprof.Labels("write", "add"), func(ctx context.Context) {
			t := time.Now()
			name := fmt.Sprintf("s%d-%d.%s.bench.example", k, time.Now().UnixNano()%1e6, seeddb.OrgName(i))
			if _, err := svc.Create(ctx, o, domains.Input{Name: name, ReturnPath: "mailing", DKIMAlgorithm: string(dkim.Ed25519)}); err != nil {
				log.Fatal(err)
			}
			if err := e.Refresh(ctx); err != nil {
				log.Fatal(err)
			}
			ta = append(ta, time.Since(t))
		})
	}
	return summary(tr), summary(ta)
}

func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	slices.Sort(ds)
	p := func(q float64) float64 {
		i := int(q*float64(len(ds))+0.999999) - 1
		return float64(ds[max(0, min(i, len(ds)-1))]) / 1e6
	}
	return fmt.Sprintf("n=%d p50 %.1f ms, p99 %.1f ms, max %.1f ms", len(ds), p(0.5), p(0.99), p(1))
}
