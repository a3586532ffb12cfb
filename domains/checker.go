package domains

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/sendergate/sendergate/store"
)

// The background checker works through a queue in the store: each domain's
// next_check_at says when it is due (planCheck). A round reads the earliest
// one (one indexed query; nothing more when nothing is due), leases a batch
// of due rows, so that instances sharing a database take disjoint ones, and
// checks them with a pool of workers under a per-instance ceiling of DNS
// queries per second.

const (
	// jitterShare is the largest share of the wait by which a planned
	// check is moved earlier, so that domains added or checked together
	// drift apart instead of coming due in one burst.
	jitterShare = 0.1
	// checkLease is how long a leased row stays with its checker; a row
	// whose checker died comes due again after it.
	checkLease = 5 * time.Minute
	// leaseMargin is the time a check needs before its lease ends to be
	// started (on top of CheckTimeout).
	leaseMargin = 30 * time.Second
	// maxCheckBatch bounds the rows one round leases.
	maxCheckBatch = 256
	// cnameHintLookups is what DNSResolver.LookupCNAME asks beyond the
	// CNAME when a name exists without one (A, AAAA and TXT, for
	// Answer.Other).
	cnameHintLookups = 3
	// behindWarnEvery spaces the warnings that the checks fall behind.
	behindWarnEvery = 10 * time.Minute
	// noDeadline is a grace no domain reaches (see planCheck).
	noDeadline = 100 * 365 * 24 * time.Hour
)

// Results of a background check, the values of the result label of
// sendergate_domains_checks_total.
const (
	resultOK       = "ok"       // every record found
	resultMissing  = "missing"  // a record missing or wrong
	resultError    = "error"    // a transient DNS failure, not counted as a miss
	resultConflict = "conflict" // not applied: changed meanwhile, or another organization holds the name
	resultFailed   = "failed"   // the result could not be saved
)

var checkResults = []string{resultOK, resultMissing, resultError, resultConflict, resultFailed}

// checker is the background part of a Service.
type checker struct {
	lim *rate.Limiter // nil: no ceiling
	// limMu orders the reservations: the limiter credits time twice when
	// one comes with a time before the previous one's.
	limMu sync.Mutex
	// now is the limiter's clock and waitUntil sleeps until a time of it:
	// the wall clock, or a test's.
	now       func() time.Time
	waitUntil func(ctx context.Context, t time.Time) error

	batch, workers int
	lag            prometheus.Gauge
	checks         *prometheus.CounterVec
	lastWarn       atomic.Int64 // Unix ns of the last "behind" warning
}

func newChecker(opts ServiceOptions) *checker {
	c := &checker{now: time.Now, waitUntil: sleepUntil, batch: maxCheckBatch, workers: 8}
	if opts.CheckQPS > 0 {
		c.lim = rate.NewLimiter(rate.Limit(opts.CheckQPS), max(1, opts.CheckQPS/10))
		// A batch is about five seconds of queries per record: a round
		// ends long before its lease.
		c.batch = min(maxCheckBatch, max(1, opts.CheckQPS*5))
		c.workers = min(32, max(2, opts.CheckQPS/4))
	}
	c.lag = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sendergate_domains_check_lag_seconds",
		Help: "How far background verification is behind: now minus the earliest due check, 0 when nothing is due.",
	})
	c.checks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendergate_domains_checks_total",
		Help: "Background verification checks by result: ok, missing (a record missing or wrong), error (transient DNS failure, not a miss), conflict (not applied: the domain changed meanwhile or another organization holds the name), failed (not saved).",
	}, []string{"result"})
	if opts.Registerer != nil {
		c.lag = registerOnce(opts.Registerer, c.lag, opts)
		c.checks = registerOnce(opts.Registerer, c.checks, opts)
	}
	for _, r := range checkResults {
		c.checks.WithLabelValues(r)
	}
	return c
}

// registerOnce registers m, or returns the collector already registered
// under its name (a second Service on the same registry).
func registerOnce[C prometheus.Collector](reg prometheus.Registerer, m C, opts ServiceOptions) C {
	err := reg.Register(m)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	if err != nil {
		opts.Logger.Error("domains: register background check metrics", "err", err)
	}
	return m
}

// sleepUntil waits for the wall clock to reach t, or for ctx.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// take waits until n more queries fit under the ceiling.
func (c *checker) take(ctx context.Context, n int) error {
	if c.lim == nil || n <= 0 {
		return ctx.Err()
	}
	var at time.Time
	c.limMu.Lock()
	for range n {
		now := c.now()
		at = now.Add(c.lim.ReserveN(now, 1).DelayFrom(now))
	}
	c.limMu.Unlock()
	return c.waitUntil(ctx, at)
}

// owe charges n queries already asked: the next take waits for them.
func (c *checker) owe(n int64) {
	if c.lim == nil {
		return
	}
	c.limMu.Lock()
	defer c.limMu.Unlock()
	for range n {
		c.lim.ReserveN(c.now(), 1)
	}
}

// countingResolver counts the DNS questions asked through it.
type countingResolver struct {
	r Resolver
	n atomic.Int64
}

func (c *countingResolver) LookupCNAME(ctx context.Context, host string) (Answer, error) {
	c.n.Add(1)
	ans, err := c.r.LookupCNAME(ctx, host)
	if err == nil && ans.CNAME == "" && ans.Rcode == dns.RcodeSuccess {
		c.n.Add(cnameHintLookups)
	}
	return ans, err
}

func (c *countingResolver) Lookup(ctx context.Context, name, typ string) (Data, error) {
	c.n.Add(1)
	return c.r.Lookup(ctx, name, typ)
}

// planCheck returns when the background checker should next look at d:
// NextCheck from its state and its last check (or creation), moved earlier
// by up to jitterShare of the wait. The jitter is a hash of the domain and
// its last check, so every instance computes the same plan from the same
// row. A grace deadline (the end of a pending domain's checks, a failing
// domain's revocation) is kept exactly: checked early, it would be planned
// again in ever smaller steps. The zero Time means never: sandbox domains,
// pending ones past grace.
func planCheck(d store.Domain, interval, grace time.Duration) store.Time {
	if d.Sandbox {
		return store.Time{}
	}
	last := d.LastCheckedAt.Time
	if last.IsZero() {
		last = d.CreatedAt.Time
	}
	st := stateOf(d)
	at, ok := NextCheck(st, last, interval, grace)
	if !ok {
		return store.Time{}
	}
	if regular, _ := NextCheck(st, last, interval, noDeadline); at.Before(regular) {
		return store.At(at)
	}
	j := time.Duration(float64(at.Sub(last)) * jitterShare * jitterUnit(d.ID, last))
	return store.At(at.Add(-j))
}

// jitterUnit maps a domain and a time to [0, 1).
func jitterUnit(id string, t time.Time) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	_ = binary.Write(h, binary.BigEndian, t.UnixMilli())
	return float64(h.Sum64()>>11) / (1 << 53)
}

// roundResult is what one round of the checker did.
type roundResult struct {
	leased  int       // rows taken from the queue
	checked int       // domains checked (the others were re-planned or given back)
	changed int       // checks that changed a domain's status
	next    time.Time // with nothing due: the earliest planned check (zero: none)
}

// round checks one batch of due domains and returns after every check of
// it has finished.
func (s *Service) round(ctx context.Context) (roundResult, error) {
	c := s.chk
	now := s.opts.Now()
	earliest, err := s.st.EarliestCheck(ctx)
	if err != nil {
		return roundResult{}, err
	}
	if earliest.IsZero() || earliest.After(now) {
		c.lag.Set(0)
		return roundResult{next: earliest.Time}, nil
	}
	lag := now.Sub(earliest.Time)
	c.lag.Set(lag.Seconds())
	s.warnBehind(lag)

	lease := store.At(now.Add(checkLease))
	batch, err := s.st.LeaseDueChecks(ctx, now, lease.Time, c.batch)
	if err != nil {
		return roundResult{}, err
	}
	res := roundResult{leased: len(batch)}
	var mu sync.Mutex
	work := make(chan store.Domain)
	var wg sync.WaitGroup
	for range min(c.workers, len(batch)) {
		wg.Go(func() {
			for d := range work {
				checked, changed := s.checkLeased(ctx, d, lease)
				mu.Lock()
				if checked {
					res.checked++
				}
				if changed {
					res.changed++
				}
				mu.Unlock()
			}
		})
	}
	for _, d := range batch {
		work <- d // after ctx is done, workers give the rest back at once
	}
	close(work)
	wg.Wait()
	return res, nil
}

// checkLeased checks one leased domain when it is due by its state, and
// re-plans it without a query otherwise (a row the migration scheduled,
// a longer dns.verify_interval). When ctx ends first, the lease is given
// back: no half-done check is saved.
func (s *Service) checkLeased(ctx context.Context, d store.Domain, lease store.Time) (checked, changed bool) {
	if ctx.Err() != nil {
		s.giveBack(d, lease)
		return false, false
	}
	if next := planCheck(d, s.opts.Interval, s.opts.Grace); next.IsZero() || next.After(s.opts.Now()) {
		if _, err := s.st.RescheduleCheck(ctx, d.ID, lease, next); err != nil && ctx.Err() == nil {
			s.opts.Logger.Error("background domain check: re-plan failed", "domain", d.Name, "err", err)
		}
		return false, false
	}
	n := recordCount(d)
	if err := s.chk.take(ctx, n); err != nil {
		s.giveBack(d, lease)
		return false, false
	}
	if s.opts.Now().Add(s.opts.CheckTimeout + leaseMargin).After(lease.Time) {
		return false, false // the lease ends before the check would: for whoever leases it next
	}
	counted := &countingResolver{r: s.opts.Resolver}
	got, outcome, err := s.check(ctx, d, counted, false)
	s.chk.owe(counted.n.Load() - int64(n))
	if ctx.Err() != nil {
		s.giveBack(d, lease)
		return false, false
	}
	s.chk.checks.WithLabelValues(resultOf(outcome, err)).Inc()
	var se *StateError
	if err != nil && !errors.Is(err, store.ErrConflict) && !errors.As(err, &se) {
		s.opts.Logger.Error("background domain check failed", "domain", d.Name, "err", err)
	}
	return true, err == nil && got.Status != d.Status
}

// giveBack returns a leased row to the queue as it was, due when it was.
func (s *Service) giveBack(d store.Domain, lease store.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.st.RescheduleCheck(ctx, d.ID, lease, d.NextCheckAt); err != nil {
		s.opts.Logger.Warn("background domain check: lease not given back; the domain is checked when it runs out",
			"domain", d.Name, "lease_until", lease.Time, "err", err)
	}
}

// recordCount is the number of records of d: each costs at least one query.
func recordCount(d store.Domain) int {
	var recs []json.RawMessage
	_ = json.Unmarshal([]byte(d.Records), &recs)
	return max(1, len(recs))
}

func resultOf(o Outcome, err error) string {
	var se *StateError
	switch {
	case errors.Is(err, store.ErrConflict), errors.As(err, &se):
		return resultConflict
	case err != nil:
		return resultFailed
	case o == AllOK:
		return resultOK
	case o == Missed:
		return resultMissing
	}
	return resultError
}

// warnBehind logs, at most every behindWarnEvery, that the checks run
// later than planned by more than an interval.
func (s *Service) warnBehind(lag time.Duration) {
	if lag <= s.opts.Interval {
		return
	}
	now := time.Now().UnixNano()
	last := s.chk.lastWarn.Load()
	if now-last < int64(behindWarnEvery) || !s.chk.lastWarn.CompareAndSwap(last, now) {
		return
	}
	s.opts.Logger.Warn("background domain checks are behind: raise dns.check_qps or run more instances",
		"lag", lag.Round(time.Second).String(), "check_qps", s.opts.CheckQPS, "verify_interval", s.opts.Interval.String())
}

// CheckDue checks every domain that is due now, batch after batch, and
// returns how many it checked. A domain changed concurrently (another
// instance, a manual verify) is counted but not overwritten.
func (s *Service) CheckDue(ctx context.Context) (int, error) {
	n := 0
	for {
		res, err := s.round(ctx)
		n += res.checked
		if err != nil {
			return n, err
		}
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if res.leased == 0 {
			return n, nil
		}
	}
}

// Run checks due domains until ctx is done, and returns once the checks in
// flight have finished (those not started go back to the queue). It looks
// at the queue at least every tick, sooner when the earliest planned check
// comes due, and without pause while domains are due. changed is called
// after a round in which a check changed a domain's status, so the caller
// can refresh its views (other instances follow the store's state version).
func (s *Service) Run(ctx context.Context, tick time.Duration, changed func()) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		res, err := s.round(ctx)
		wait := tick
		switch {
		case err != nil:
			if ctx.Err() == nil {
				s.opts.Logger.Error("background domain checks failed", "err", err)
			}
		case res.leased > 0:
			wait = 0
		case !res.next.IsZero():
			wait = min(tick, max(0, res.next.Sub(s.opts.Now())))
		}
		if res.changed > 0 && changed != nil {
			changed()
		}
		timer.Reset(wait)
	}
}
