// Command scale measures sendergate on a large seeded database (see
// bench/seed and docs/PERFORMANCE.md "State at a million domains"): it
// starts the real binary (`sendergate serve -config`, loopback listeners
// on free ports, relay to the outbox) on the database and measures
//
//   - cold start: exec to /healthz 200 with the policy snapshot loaded;
//   - RSS (VmRSS) after the load, once the start-up work has settled, and
//     after the writes;
//   - idle CPU over -idle (utime+stime from /proc/PID/stat);
//   - DNS: TXT queries for seeded DKIM names against dns.listen;
//   - SMTP: AUTH PLAIN with seeded accounts, and one message;
//   - admin writes one at a time: add domain, set access, rotate password;
//   - -adds Ed25519 domains added one by one (wall time, per-call latency);
//   - with -second, a second instance on the same database: how long a
//     password rotation, a new domain and an access restriction made
//     through the first take to be enforced by the second.
//
// Every loop is bounded in count and in time; everything is on loopback.
// The report goes to stdout as markdown and to -json.
//
//	scale -bin ./sendergate -database sqlite:/tmp/sg/sendergate.db -orgs 100000 -domains 10
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sendergate/sendergate/bench/internal/seeddb"
)

// options are the command's flags.
type options struct {
	bin, database, work, jsonOut string
	orgs, domains                int
	second                       bool
	startLimit, idle             time.Duration
	adds                         int
	addsTime                     time.Duration
	writes                       int
	writesTime                   time.Duration
	dnsN                         int
	dnsTime                      time.Duration
	authN                        int
	propN                        int
	verifyInterval               time.Duration
	checkQPS                     int
	memoryLimit                  int64
	adminKey                     string
	pprof                        string // directory for profiles of instance A, or ""
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "", "sendergate binary (required)")
	fs.StringVar(&o.database, "database", "", "seeded database: sqlite:PATH or postgres://... (required)")
	fs.StringVar(&o.work, "work", "", "directory for the instances' data dirs, configs and logs (default a new temp dir, removed)")
	fs.StringVar(&o.jsonOut, "json", "", "also write the report as JSON to this file")
	fs.IntVar(&o.orgs, "orgs", 100000, "organizations in the seeded database (bench/seed -orgs)")
	fs.IntVar(&o.domains, "domains", 10, "sending domains per organization (bench/seed -domains)")
	fs.BoolVar(&o.second, "second", false, "start a second instance on the same database and measure propagation")
	fs.DurationVar(&o.startLimit, "start-limit", 3*time.Minute, "longest wait for /healthz")
	fs.DurationVar(&o.idle, "idle", 30*time.Second, "idle CPU window")
	fs.IntVar(&o.adds, "adds", 10000, "Ed25519 domains added one by one")
	fs.DurationVar(&o.addsTime, "adds-time", 5*time.Minute, "time limit of the one-by-one adds")
	fs.IntVar(&o.writes, "writes", 200, "calls per kind of admin write for the latency figures")
	fs.DurationVar(&o.writesTime, "writes-time", 90*time.Second, "time limit per kind of write")
	fs.IntVar(&o.dnsN, "dns", 20000, "DNS queries")
	fs.DurationVar(&o.dnsTime, "dns-time", 30*time.Second, "time limit of the DNS queries")
	fs.IntVar(&o.authN, "auth", 200, "SMTP AUTH connections")
	fs.IntVar(&o.propN, "prop", 10, "propagation samples per kind")
	fs.DurationVar(&o.verifyInterval, "verify-interval", time.Hour, "dns.verify_interval (as seeded)")
	fs.IntVar(&o.checkQPS, "check-qps", 50, "dns.check_qps")
	fs.Int64Var(&o.memoryLimit, "memory-limit", 960<<20, "memory_limit_bytes of the instances (0: none)")
	fs.StringVar(&o.pprof, "pprof", "", "directory: serve pprof on debug.listen and save instance A's CPU profile of the one-by-one adds and heap profiles (needs a sendergate with debug.listen)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.bin == "" || o.database == "" {
		return nil, fmt.Errorf("-bin and -database are required")
	}
	if o.orgs < 2 || o.domains < 2 {
		return nil, fmt.Errorf("-orgs and -domains must be at least 2")
	}
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	o.adminKey = "sga_scale_" + hex.EncodeToString(b)
	return o, nil
}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("scale: ")
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cleanup := func() {}
	if o.work == "" {
		dir, err := os.MkdirTemp("", "sendergate-scale.")
		if err != nil {
			log.Fatal(err)
		}
		cleanup = func() { os.RemoveAll(dir) }
		o.work = dir
	}
	rep, err := run(ctx, o, log.Printf)
	cleanup() // before log.Fatal, which skips deferred calls
	if rep != nil {
		rep.markdown(os.Stdout)
		if o.jsonOut != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			if werr := os.WriteFile(o.jsonOut, b, 0o644); werr != nil {
				log.Print(werr)
			}
		}
	}
	if err != nil {
		log.Fatal(err)
	}
}

// run starts the instances, measures, stops them and returns the report
// (partial when err is not nil).
func run(ctx context.Context, o *options, logf func(string, ...any)) (*report, error) {
	rep := &report{Database: redactDSN(o.database), Orgs: o.orgs, Domains: o.orgs * o.domains}
	a, err := newInstance("A", filepath.Join(o.work, "a"), o)
	if err != nil {
		return nil, err
	}
	defer a.stop()
	logf("starting instance A on %s", rep.Database)
	if err := a.start(ctx, o.bin, o.startLimit); err != nil {
		return rep, err
	}
	rep.ColdStart = sec(a.coldStart)
	rep.RSSLoaded = mib(a.rssBytes())
	logf("A healthy after %.1fs, RSS %.0f MiB; waiting for start-up work to settle", rep.ColdStart, rep.RSSLoaded)
	rep.Settle = sec(a.settle(2 * time.Minute))
	rep.RSSSettled = mib(a.rssBytes())
	logf("A settled after %.1fs more, RSS %.0f MiB", rep.Settle, rep.RSSSettled)
	if o.pprof != "" {
		if err := a.profile("heap", 0, filepath.Join(o.pprof, "a-heap-loaded.pprof")); err != nil {
			rep.Errors = append(rep.Errors, "heap profile: "+err.Error())
		}
	}

	var b *instance
	if o.second {
		if b, err = newInstance("B", filepath.Join(o.work, "b"), o); err != nil {
			return rep, err
		}
		defer b.stop()
		logf("starting instance B")
		if err := b.start(ctx, o.bin, o.startLimit); err != nil {
			return rep, err
		}
		rep.ColdStartB = sec(b.coldStart)
		b.settle(2 * time.Minute)
		rep.RSSB = mib(b.rssBytes())
		logf("B healthy after %.1fs, RSS %.0f MiB", rep.ColdStartB, rep.RSSB)
	}

	m := &measure{o: o, a: a, b: b, rep: rep, logf: logf, api: newAPI(a.publicURL, o.adminKey),
		passwords: map[int]string{}}
	steps := []struct {
		name string
		f    func(context.Context) error
	}{
		{"idle CPU", m.idleCPU},
		{"SMTP", m.smtp},
		{"DNS", m.dns},
		{"admin writes", m.writes},
		{"one-by-one adds", m.bulkAdds},
		{"propagation", m.propagation},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		logf("-- %s", s.name)
		if err := s.f(ctx); err != nil {
			rep.Errors = append(rep.Errors, s.name+": "+err.Error())
			logf("%s failed: %v", s.name, err)
		}
	}
	if o.pprof != "" {
		if err := a.profile("heap", 0, filepath.Join(o.pprof, "a-heap-after.pprof")); err != nil {
			rep.Errors = append(rep.Errors, "heap profile: "+err.Error())
		}
	}
	rep.RSSAfter = mib(a.rssBytes())
	if b != nil {
		rep.RSSBAfter = mib(b.rssBytes())
	}
	return rep, nil
}

// measure holds what the steps share.
type measure struct {
	o         *options
	a, b      *instance
	rep       *report
	logf      func(string, ...any)
	api       *api
	passwords map[int]string // rotated passwords by organization index
}

func (m *measure) password(i int) string {
	if p, ok := m.passwords[i]; ok {
		return p
	}
	return seeddb.Password(i)
}

// spread returns the k-th of n organization indexes spread over the
// dataset, offset by off.
func (m *measure) spread(k, n, off int) int {
	return (off + k*(m.o.orgs/max(1, n))) % m.o.orgs
}

func (m *measure) idleCPU(ctx context.Context) error {
	checks0 := checksTotal(m.a)
	c0, err := m.a.cpuTime()
	if err != nil {
		return err
	}
	var cb0 time.Duration
	if m.b != nil {
		cb0, _ = m.b.cpuTime()
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(m.o.idle):
	}
	c1, err := m.a.cpuTime()
	if err != nil {
		return err
	}
	wall := time.Since(t0)
	m.rep.IdleCPU = 100 * float64(c1-c0) / float64(wall)
	m.rep.IdleChecks = checksTotal(m.a) - checks0
	if m.b != nil {
		cb1, _ := m.b.cpuTime()
		m.rep.IdleCPUB = 100 * float64(cb1-cb0) / float64(wall)
	}
	m.logf("idle: A %.2f %% of a core over %s (%.0f background checks), B %.2f %%", m.rep.IdleCPU, wall.Round(time.Second), m.rep.IdleChecks, m.rep.IdleCPUB)
	return nil
}

// checksTotal sums sendergate_domains_checks_total on /metrics (-1 when
// unreadable).
func checksTotal(in *instance) float64 {
	resp, err := newAPI(in.publicURL, in.adminKey).c.Get(in.publicURL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	total := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "sendergate_domains_checks_total") {
			var v float64
			if f := strings.Fields(line); len(f) == 2 {
				fmt.Sscan(f[1], &v)
			}
			total += v
		}
	}
	return total
}

func sec(d time.Duration) float64 { return d.Seconds() }

func mib(n int64, err error) float64 {
	if err != nil {
		return -1
	}
	return float64(n) / (1 << 20)
}

// redactDSN hides a password in a PostgreSQL URL.
func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		if j := strings.Index(dsn[i+3:], "@"); j >= 0 {
			if k := strings.Index(dsn[i+3:i+3+j], ":"); k >= 0 {
				return dsn[:i+3+k] + ":***" + dsn[i+3+j:]
			}
		}
	}
	return dsn
}
