package domains

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sendergate/sendergate/internal/clocktest"
	"github.com/sendergate/sendergate/internal/dnstest"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// queueEnv is a Service whose checks reach the customer's DNS server
// through a queryCounter.
type queueEnv struct {
	st    *store.Store
	dns   *dnstest.Server
	q     *queryCounter
	clock *clocktest.Clock
	org   store.Org
	svc   *Service
}

func newQueueEnv(t *testing.T, st *store.Store, opts ServiceOptions) *queueEnv {
	t.Helper()
	e := &queueEnv{st: st, dns: dnstest.NewServer(t), clock: clocktest.New(svcT0)}
	e.q = newQueryCounter(t, e.dns.Addr())
	e.org = newTestOrg(t, st, "acme")
	e.svc = e.service(t, st, opts)
	return e
}

// service returns a Service on st (another instance when st is another
// handle) with the environment's DNS and clock.
func (e *queueEnv) service(t *testing.T, st *store.Store, opts ServiceOptions) *Service {
	t.Helper()
	opts.Zone, opts.Interval, opts.Grace, opts.Now = testZone, svcInterval, svcGrace, e.clock.Now
	opts.CheckTimeout = 5 * time.Second
	if opts.Resolver == nil {
		opts.Resolver = newTestResolver(t, e.q.addr)
	}
	return NewService(st, opts)
}

// addDomains creates n domains name0.example... (Ed25519, with a
// return-path record when withReturnPath) and publishes their records.
func (e *queueEnv) addDomains(t *testing.T, prefix string, n int, withReturnPath bool) []store.Domain {
	t.Helper()
	var ds []store.Domain
	for i := range n {
		in := Input{Name: fmt.Sprintf("%s%d.example", prefix, i), DKIMAlgorithm: AlgorithmEd25519}
		if withReturnPath {
			in.ReturnPath = "mailing"
		}
		d, err := e.svc.Create(context.Background(), e.org, in)
		if err != nil {
			t.Fatalf("Create %s: %v", in.Name, err)
		}
		for _, r := range recordsOf(t, d) {
			e.dns.PublishCNAME(r.Host, r.Value)
		}
		ds = append(ds, d)
	}
	return ds
}

func (e *queueEnv) stored(t *testing.T, name string) store.Domain {
	t.Helper()
	d, err := e.st.DomainByName(context.Background(), e.org.ID, name)
	if err != nil {
		t.Fatalf("domain %s: %v", name, err)
	}
	return d
}

// wantPlanned fails unless next lies in [at - wait*jitterShare, at].
func wantPlanned(t *testing.T, what string, next store.Time, last time.Time, wait time.Duration) {
	t.Helper()
	at := last.Add(wait)
	earliest := at.Add(-time.Duration(float64(wait) * jitterShare))
	if next.IsZero() || next.Before(earliest) || next.After(at) {
		t.Errorf("%s: next check %v, want within [%v, %v]", what, next, earliest, at)
	}
}

// TestBackgroundCheckQueue: a due domain is checked once, and its next
// check moves forward by the lifecycle's wait less a jitter within the
// bound; with nothing due a round leases nothing and asks nothing.
func TestBackgroundCheckQueue(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newQueueEnv(t, st, ServiceOptions{})
		d := e.addDomains(t, "queue", 1, false)[0]
		host := recordsOf(t, d)[0].Host
		wantPlanned(t, "created (pending: every minute)", e.stored(t, d.Name).NextCheckAt, svcT0, pendingFastEvery)

		e.clock.Set(svcT0.Add(time.Minute))
		if n, err := e.svc.CheckDue(ctx); err != nil || n != 1 {
			t.Fatalf("CheckDue when due: %d, %v; want 1", n, err)
		}
		if c := e.q.Count(host); c != 1 {
			t.Errorf("%s asked %d times, want once", host, c)
		}
		got := e.stored(t, d.Name)
		wantStatus(t, got, Verified)
		wantPlanned(t, "verified", got.NextCheckAt, e.clock.Now(), svcInterval)

		// Nothing due: no row is leased, no question asked, and the round
		// knows when to look next.
		e.clock.Add(10 * time.Minute)
		res, err := e.svc.round(ctx)
		if err != nil || res.leased != 0 || res.checked != 0 || !res.next.Equal(got.NextCheckAt.Time) {
			t.Errorf("round with nothing due = %+v, %v; want nothing leased, next %v", res, err, got.NextCheckAt)
		}
		if n, err := e.svc.CheckDue(ctx); err != nil || n != 0 {
			t.Errorf("CheckDue with nothing due: %d, %v", n, err)
		}
		if c, want := e.q.Total(), len(recordsOf(t, d)); c != want {
			t.Errorf("%d questions after the rounds with nothing due, want still %d (one per record)", c, want)
		}

		// At its planned time it is checked again, once.
		e.clock.Set(got.NextCheckAt.Time)
		if n, err := e.svc.CheckDue(ctx); err != nil || n != 1 {
			t.Fatalf("CheckDue at the planned time: %d, %v; want 1", n, err)
		}
		if c := e.q.Count(host); c != 2 {
			t.Errorf("%s asked %d times after two checks", host, c)
		}
		again := e.stored(t, d.Name)
		wantPlanned(t, "checked again", again.NextCheckAt, got.NextCheckAt.Time, svcInterval)
	})
}

// TestBackgroundCheckStateVersion: a check that changes no status writes
// no state version (no instance rebuilds its snapshot); a status change
// does, and is reported to Run's caller.
func TestBackgroundCheckStateVersion(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newQueueEnv(t, st, ServiceOptions{})
		d := e.addDomains(t, "ver", 1, false)[0]
		host := recordsOf(t, d)[0].Host
		e.clock.Set(svcT0.Add(time.Minute))
		if res, err := e.svc.round(ctx); err != nil || res.checked != 1 || res.changed != 1 {
			t.Fatalf("verifying round = %+v, %v; want one check, one change", res, err)
		}
		steps := []struct {
			name      string
			published bool
			status    Status
			bumped    bool
		}{
			{name: "all ok again", published: true, status: Verified},
			{name: "first miss", status: Verified},
			{name: "second miss: failing", status: Failing, bumped: true},
			{name: "still failing", status: Failing},
		}
		for _, s := range steps {
			if s.published {
				e.dns.PublishCNAME(host, recordsOf(t, d)[0].Value)
			} else {
				e.dns.Remove(host)
			}
			e.clock.Set(e.stored(t, d.Name).NextCheckAt.Time)
			v0, err := st.Version(ctx)
			if err != nil {
				t.Fatal(err)
			}
			res, err := e.svc.round(ctx)
			if err != nil || res.checked != 1 {
				t.Fatalf("%s: round = %+v, %v", s.name, res, err)
			}
			v1, _ := st.Version(ctx)
			wantStatus(t, e.stored(t, d.Name), s.status)
			if (v1 != v0) != s.bumped || (res.changed == 1) != s.bumped {
				t.Errorf("%s: state version %d -> %d, changes reported %d; want a bump only on a status change", s.name, v0, v1, res.changed)
			}
		}
	})
}

// TestBackgroundCheckTwoInstances: two Services on two connections to one
// PostgreSQL database, as two sendergate processes, run their rounds at the
// same time: each due domain is checked exactly once.
func TestBackgroundCheckTwoInstances(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	ctx := context.Background()
	open := func() *store.Store {
		return storetest.OpenPostgres(t, dsn)
	}
	a, b := open(), open()
	e := newQueueEnv(t, a, ServiceOptions{})
	ds := e.addDomains(t, "shared", 24, false)
	svcs := []*Service{e.svc, e.service(t, b, ServiceOptions{})}
	for _, s := range svcs {
		s.chk.batch, s.chk.workers = 3, 2 // many small rounds, so the two interleave
	}
	e.clock.Set(svcT0.Add(2 * time.Minute))

	counts := make([]int, len(svcs))
	var wg sync.WaitGroup
	for i, s := range svcs {
		wg.Go(func() {
			n, err := s.CheckDue(ctx)
			if err != nil {
				t.Errorf("instance %d: CheckDue: %v", i, err)
			}
			counts[i] = n
		})
	}
	wg.Wait()
	if counts[0]+counts[1] != len(ds) {
		t.Errorf("instances checked %v domains, want %d in all", counts, len(ds))
	}
	for _, d := range ds {
		host := recordsOf(t, d)[0].Host
		if c := e.q.Count(host); c != 1 {
			t.Errorf("%s asked %d times, want exactly once", host, c)
		}
		wantStatus(t, e.stored(t, d.Name), Verified)
	}
}

// TestBackgroundCheckRate: under dns.check_qps the queries of background
// checks never exceed qps*window + burst, over the whole run and, with one
// worker, over every window (less one domain's records, asked together).
func TestBackgroundCheckRate(t *testing.T) {
	const qps, burst = 10, 1
	tests := []struct {
		name           string
		workers        int
		withReturnPath bool // two records per domain, asked together
		everyWindow    bool
	}{
		{name: "one worker, every window", workers: 1, everyWindow: true},
		{name: "four workers, two records each", workers: 4, withReturnPath: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			lc := &limitClock{t: svcT0}
			st := storetest.SQLite(t)
			dnsSrv := dnstest.NewServer(t)
			q := newQueryCounter(t, dnsSrv.Addr())
			timed := &timedResolver{r: newTestResolver(t, q.addr), clock: lc}
			e := &queueEnv{st: st, dns: dnsSrv, q: q, clock: clocktest.New(svcT0), org: newTestOrg(t, st, "acme")}
			e.svc = e.service(t, st, ServiceOptions{Resolver: timed, CheckQPS: qps})
			e.svc.chk.now, e.svc.chk.waitUntil, e.svc.chk.workers = lc.Now, lc.waitUntil, tt.workers
			if got := e.svc.chk.lim.Burst(); got != burst {
				t.Fatalf("burst %d, want %d", got, burst)
			}
			ds := e.addDomains(t, "rate", 12, tt.withReturnPath)
			perDomain := len(recordsOf(t, ds[0]))
			e.clock.Set(svcT0.Add(2 * time.Minute))

			if n, err := e.svc.CheckDue(ctx); err != nil || n != len(ds) {
				t.Fatalf("CheckDue: %d, %v; want %d", n, err, len(ds))
			}
			if got, want := q.Total(), len(ds)*perDomain; got != want || len(timed.at) != want {
				t.Fatalf("%d questions reached the server (%d noted), want %d", got, len(timed.at), want)
			}
			elapsed := lc.Now().Sub(svcT0)
			if max := qps*elapsed.Seconds() + burst; float64(q.Total()) > max+1e-3 {
				t.Errorf("%d queries in %v: more than qps*window+burst = %.1f", q.Total(), elapsed, max)
			}
			if !tt.everyWindow {
				return
			}
			at := slices.Clone(timed.at)
			slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
			// A domain's records are asked together: a window holds at
			// most one domain's records beyond the rate.
			for i := range at {
				for j := i; j < len(at); j++ {
					if n, max := float64(j-i+1), qps*at[j].Sub(at[i]).Seconds()+float64(max(burst, perDomain)); n > max+1e-3 {
						t.Fatalf("%v queries within %v (from query %d): more than %.2f", n, at[j].Sub(at[i]), i, max)
					}
				}
			}
		})
	}
}

// TestCheckerOwe: questions a check asked beyond its estimate delay the
// next one, so the ceiling holds on average.
func TestCheckerOwe(t *testing.T) {
	lc := &limitClock{t: svcT0}
	c := newChecker(ServiceOptions{CheckQPS: 10})
	c.now = lc.Now
	var waited []time.Time
	c.waitUntil = func(ctx context.Context, t time.Time) error {
		waited = append(waited, t)
		return lc.waitUntil(ctx, t)
	}
	ctx := context.Background()
	if err := c.take(ctx, 1); err != nil {
		t.Fatal(err)
	}
	c.owe(3)
	if err := c.take(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if want := svcT0.Add(400 * time.Millisecond); len(waited) != 2 || waited[0].After(svcT0) || waited[1].Sub(want).Abs() > time.Millisecond {
		t.Errorf("waits until %v; want none, then 4 tokens at 10/s: %v", waited, want)
	}
}

// TestBackgroundCheckMetrics: the series exist from the start; a round
// behind its schedule reports its lag, checks count by result, and the lag
// is 0 once nothing is due.
func TestBackgroundCheckMetrics(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	st := storetest.SQLite(t)
	e := newQueueEnv(t, st, ServiceOptions{Registerer: reg})
	if n, err := testutil.GatherAndCount(reg, "sendergate_domains_checks_total", "sendergate_domains_check_lag_seconds"); err != nil || n != len(checkResults)+1 {
		t.Fatalf("series at start: %d, %v; want %d", n, err, len(checkResults)+1)
	}
	// A second Service on the same registry shares the series.
	second := e.service(t, st, ServiceOptions{Registerer: reg})
	if second.chk.checks != e.svc.chk.checks {
		t.Error("a second Service registered its own counters")
	}

	ds := e.addDomains(t, "metric", 2, false)
	e.dns.Remove(recordsOf(t, ds[1])[0].Host)
	first := e.stored(t, ds[0].Name).NextCheckAt
	if other := e.stored(t, ds[1].Name).NextCheckAt; other.Before(first.Time) {
		first = other
	}
	e.clock.Set(svcT0.Add(10 * time.Minute))
	e.svc.chk.batch = 1
	if res, err := e.svc.round(ctx); err != nil || res.checked != 1 {
		t.Fatalf("round: %+v, %v", res, err)
	}
	if lag, want := testutil.ToFloat64(e.svc.chk.lag), e.clock.Now().Sub(first.Time).Seconds(); lag != want {
		t.Errorf("lag = %vs, want %vs (now - earliest due)", lag, want)
	}
	if _, err := e.svc.CheckDue(ctx); err != nil {
		t.Fatal(err)
	}
	if lag := testutil.ToFloat64(e.svc.chk.lag); lag != 0 {
		t.Errorf("lag = %vs with nothing due, want 0", lag)
	}
	for result, want := range map[string]float64{resultOK: 1, resultMissing: 1, resultError: 0, resultConflict: 0, resultFailed: 0} {
		if got := testutil.ToFloat64(e.svc.chk.checks.WithLabelValues(result)); got != want {
			t.Errorf("checks{result=%q} = %v, want %v", result, got, want)
		}
	}
}

// TestRunStopsAfterChecksInFlight: Run returns only once the check in
// flight has ended, and gives its lease back instead of saving a check cut
// short, so the store can be closed right after (as serve does) and the
// domain stays due, with no "lookup failed" result written.
func TestRunStopsAfterChecksInFlight(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "run.db")
	st, err := store.Open(ctx, "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	addr, queried := blackhole(t)
	res, err := NewDNSResolver([]string{addr}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	clock := clocktest.New(svcT0)
	svc := NewService(st, ServiceOptions{Zone: testZone, Resolver: res, Interval: svcInterval, Grace: svcGrace, Now: clock.Now})
	org := newTestOrg(t, st, "acme")
	d, err := svc.Create(ctx, org, Input{Name: "stop.example", DKIMAlgorithm: AlgorithmEd25519})
	if err != nil {
		t.Fatal(err)
	}
	due := d.NextCheckAt
	clock.Set(svcT0.Add(2 * time.Minute))

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.Run(rctx, time.Hour, nil)
	}()
	<-queried // the check is in flight
	cancel()
	<-done
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = store.Open(ctx, "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.DomainByName(ctx, org.ID, "stop.example")
	if err != nil {
		t.Fatal(err)
	}
	if !got.NextCheckAt.Equal(due.Time) {
		t.Errorf("next check %v after shutdown, want %v (the lease given back)", got.NextCheckAt, due)
	}
	if !got.LastCheckedAt.IsZero() || recordsOf(t, got)[0].Status != StatusUnchecked {
		t.Errorf("a check cut short was saved: last checked %v, record %+v", got.LastCheckedAt, recordsOf(t, got)[0])
	}
}

// TestPlanCheck: when the background checker looks at a domain next.
func TestPlanCheck(t *testing.T) {
	created := svcT0
	at := func(d time.Duration) store.Time { return store.At(created.Add(d)) }
	firstMiss := at(2 * time.Hour)
	tests := []struct {
		name string
		d    store.Domain
		// the plan is within [want - jitter, want]; exact means no jitter,
		// never no check at all
		want  time.Time
		wait  time.Duration
		exact bool
		never bool
	}{
		{name: "new: a minute after creation", d: store.Domain{Status: "pending"},
			want: created.Add(time.Minute), wait: time.Minute},
		{name: "pending, checked at 5m", d: store.Domain{Status: "pending", LastCheckedAt: at(5 * time.Minute)},
			want: created.Add(6 * time.Minute), wait: time.Minute},
		{name: "pending, after the first ten minutes", d: store.Domain{Status: "pending", LastCheckedAt: at(time.Hour)},
			want: created.Add(70 * time.Minute), wait: 10 * time.Minute},
		{name: "pending, end of grace: exactly then", d: store.Domain{Status: "pending", LastCheckedAt: at(svcGrace - 3*time.Minute)},
			want: created.Add(svcGrace), exact: true},
		{name: "pending past grace: never", d: store.Domain{Status: "pending", LastCheckedAt: at(svcGrace)}, never: true},
		{name: "verified: an interval", d: store.Domain{Status: "verified", History: "o", LastCheckedAt: at(time.Hour)},
			want: created.Add(2 * time.Hour), wait: svcInterval},
		{name: "failing, grace ends first: exactly then",
			d:    store.Domain{Status: "failing", History: "oxx", FirstMissAt: firstMiss, LastCheckedAt: at(2*time.Hour + svcGrace - 10*time.Minute)},
			want: firstMiss.Add(svcGrace), exact: true},
		{name: "failing, an interval before grace ends",
			d:    store.Domain{Status: "failing", History: "xx", FirstMissAt: firstMiss, LastCheckedAt: at(3 * time.Hour)},
			want: created.Add(4 * time.Hour), wait: svcInterval},
		{name: "revoked: an interval", d: store.Domain{Status: "revoked", LastCheckedAt: at(9 * time.Hour)},
			want: created.Add(10 * time.Hour), wait: svcInterval},
		{name: "sandbox: never", d: store.Domain{Status: "verified", Sandbox: true}, never: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.d.ID, tt.d.CreatedAt = store.NewID(), store.At(created)
			got := planCheck(tt.d, svcInterval, svcGrace)
			switch {
			case tt.never:
				if !got.IsZero() {
					t.Errorf("plan %v, want none", got)
				}
			case tt.exact:
				if !got.Equal(tt.want) {
					t.Errorf("plan %v, want exactly %v", got, tt.want)
				}
			default:
				wantPlanned(t, "plan", got, tt.want.Add(-tt.wait), tt.wait)
			}
		})
	}

	// Domains verified at the same instant spread over the jitter window,
	// and a plan is the same wherever it is computed.
	seen := map[time.Time]bool{}
	for range 50 {
		d := store.Domain{ID: store.NewID(), Status: "verified", History: "o", CreatedAt: store.At(created), LastCheckedAt: at(time.Hour)}
		p := planCheck(d, svcInterval, svcGrace)
		if again := planCheck(d, svcInterval, svcGrace); !again.Equal(p.Time) {
			t.Fatalf("plan %v, then %v for the same row", p, again)
		}
		seen[p.Time] = true
	}
	if len(seen) < 45 {
		t.Errorf("50 domains checked together got %d distinct plans; want them spread", len(seen))
	}
}
