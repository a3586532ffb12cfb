package limits

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Limiter.
type Options struct {
	// Sync is how often Run settles with the store; default (and at most
	// useful) one second.
	Sync time.Duration
	// Timeout bounds one exchange with the store; default 2 s. A slow
	// store makes a recipient that needs a new slice wait up to this long.
	Timeout time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger gets store failures and limits reached; nil discards.
	Logger *slog.Logger
	// Registerer receives the sendergate_limits_* metrics; nil: none.
	Registerer prometheus.Registerer
}

const (
	// idleAfter: a counter unused this long gives back its whole slice
	// and is forgotten.
	idleAfter = time.Minute
	// maxLeases bounds the leases one Admit tries before it refuses (only
	// reached when other instances take the budget meanwhile).
	maxLeases = 3
	// keepRows is how long rows are kept after their window ended.
	keepRows = 48 * time.Hour
	// cleanEvery is how often a Sync deletes old rows.
	cleanEvery = 10 * time.Minute
)

// Limiter counts recipients per scope and window, admits them from slices
// of the shared budget leased from the store, and settles with the store
// at every Sync. It is safe for concurrent use; one Limiter serves every
// adapter of a process.
type Limiter struct {
	st   Store
	opts Options
	log  *slog.Logger
	m    *metrics

	mu       sync.Mutex
	counters map[Key]*counter
	down     bool // the last exchange failed: no leases until one succeeds
	closing  bool // Close: give every slice back

	syncMu  sync.Mutex // one Sync at a time
	cleaned time.Time
}

// counter is this instance's view of one Key.
type counter struct {
	key   Key
	orgID string
	name  string
	end   time.Time
	limit int64
	// held is the budget leased from the store (what was admitted from
	// it included); used is what was admitted since the last settlement
	// (negative after releases of settled recipients). A limited counter
	// admits while used + n <= held - returning.
	held, used int64
	// returning is the part of held a sync in flight gives back.
	returning int64
	demand    int64     // recipients asked for since the last sync
	refused   int64     // recipients refused since the last sync (on day counters)
	reached   bool      // the limit was hit since the last sync
	hitLimit  int64     // the limit when it was first hit since the last sync
	hitAt     time.Time // and when
	exhausted bool      // a lease found too little free: refuse until the next sync
	exists    bool      // the store has the row
	lastUse   time.Time
	refill    chan struct{} // closed when the lease in flight is done
	// The row as of the last exchange.
	rowUsed, rowLeased int64
}

// New returns a limiter over st; call Run to keep it settling.
func New(st Store, opts Options) *Limiter {
	if opts.Sync <= 0 {
		opts.Sync = time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Limiter{st: st, opts: opts, log: log, m: newMetrics(opts.Registerer), counters: map[Key]*counter{}}
}

// Reservation is recipients admitted by Admit: Release gives them back
// when the transaction they were admitted for does not complete.
type Reservation struct{ items []held }

type held struct {
	key   Key
	kind  Kind
	orgID string
	end   time.Time
	n     int64
}

// Add appends o's recipients to r.
func (r *Reservation) Add(o Reservation) { r.items = append(r.items, o.items...) }

// Empty reports whether r holds no recipients.
func (r Reservation) Empty() bool { return len(r.items) == 0 }

// Admit admits n more recipients in every scope, or none: each limited
// window of each scope must have room for all n. It touches the store only
// when this instance's slice of some window is spent. A nil *Refused
// means admitted; the Reservation is what Release gives back.
func (l *Limiter) Admit(ctx context.Context, scopes []Scope, n int64) (Reservation, *Refused) {
	if n <= 0 || len(scopes) == 0 {
		return Reservation{}, nil
	}
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := make([]*counter, 0, len(scopes)*int(numWindows))
	for i := range scopes {
		for w := Minute; w < numWindows; w++ {
			c := l.counterFor(&scopes[i], w, now)
			c.demand += n
			c.lastUse = now
			cs = append(cs, c)
		}
	}
	for attempt := 0; ; attempt++ {
		var short []*counter
		for i, c := range cs {
			if c.limit == 0 {
				continue
			}
			s := &scopes[i/int(numWindows)]
			// What was settled (by every instance, as of the last
			// exchange) plus what was admitted here since is a lower
			// bound of the window's count.
			if c.rowUsed+c.used+n > c.limit {
				return Reservation{}, l.refuse(s, cs[i-int(c.key.Window):], c, n)
			}
			if c.used+n <= c.held-c.returning {
				continue
			}
			if c.exhausted || attempt >= maxLeases {
				return Reservation{}, l.refuse(s, cs[i-int(c.key.Window):], c, n)
			}
			if l.down || ctx.Err() != nil {
				l.m.recipients.WithLabelValues(s.Kind.String(), "unavailable").Add(float64(n))
				return Reservation{}, &Refused{Kind: s.Kind, Name: s.Name, Window: c.key.Window, Limit: c.limit, Frees: c.end, Unavailable: true}
			}
			short = append(short, c)
		}
		if len(short) == 0 {
			break
		}
		if c := l.lease(ctx, short, n); c != nil {
			for i := range cs {
				if cs[i] == c {
					return Reservation{}, l.refuse(&scopes[i/int(numWindows)], cs[i-int(c.key.Window):], c, n)
				}
			}
		}
	}
	r := Reservation{items: make([]held, len(cs))}
	for i, c := range cs {
		c.used += n
		r.items[i] = held{key: c.key, kind: c.key.Kind, orgID: c.orgID, end: c.end, n: n}
	}
	for i := range scopes {
		l.m.recipients.WithLabelValues(scopes[i].Kind.String(), "admitted").Add(float64(n))
	}
	return r, nil
}

// counterFor returns the counter of scope s in window w at now, made on
// first use, with the scope's current limit.
func (l *Limiter) counterFor(s *Scope, w Window, now time.Time) *counter {
	start := w.Start(now)
	k := Key{Kind: s.Kind, ID: s.ID, Window: w, Start: start.UnixMilli()}
	c := l.counters[k]
	if c == nil {
		c = &counter{key: k, orgID: s.OrgID, end: start.Add(w.Length())}
		l.counters[k] = c
	}
	c.limit, c.name = s.Limits[w], s.Name
	return c
}

// refuse records a refusal of n recipients by counter c of scope s, whose
// counters (minute, hour, day) start scopeCs.
func (l *Limiter) refuse(s *Scope, scopeCs []*counter, c *counter, n int64) *Refused {
	if !c.reached {
		c.reached, c.hitLimit, c.hitAt = true, c.limit, c.lastUse
	}
	scopeCs[Day].refused += n
	l.m.recipients.WithLabelValues(s.Kind.String(), "refused").Add(float64(n))
	return &Refused{Kind: s.Kind, Name: s.Name, Window: c.key.Window, Limit: c.limit, Frees: c.end}
}

// lease asks the store for slices big enough to admit n more on each of
// short, and returns a counter that could not get enough (nil when all
// did, or when the store could not be asked). It is called with l.mu held
// and returns with it held, having released it during the exchange; when
// another lease of one of the counters is in flight it waits for that
// one instead (and returns nil: the caller looks again).
func (l *Limiter) lease(ctx context.Context, short []*counter, n int64) *counter {
	for _, c := range short {
		if ch := c.refill; ch != nil {
			l.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
			}
			l.mu.Lock()
			return nil
		}
	}
	ch := make(chan struct{})
	ops := make([]Op, len(short))
	for i, c := range short {
		c.refill = ch
		need := c.used + n - (c.held - c.returning)
		ops[i] = Op{Key: c.key, OrgID: c.orgID, End: c.end.UnixMilli(), Limit: c.limit, Need: need, Want: need + 2*c.demand, Exists: c.exists}
	}
	sortOps(ops)
	l.mu.Unlock()
	err := l.exchange(ctx, "lease", ops)
	l.mu.Lock()
	var failed *counter
	for i := range ops {
		op := &ops[i]
		c := l.counters[op.Key] // kept while refill is set
		c.refill = nil
		if err != nil {
			continue
		}
		c.exists = true
		c.held += op.Granted
		c.rowUsed, c.rowLeased = op.RowUsed, op.RowLeased
		if op.Granted < op.Need {
			failed = c
			// Nothing at all left: refuse without asking again until the
			// next sync (a smaller request may still fit otherwise).
			c.exhausted = c.limit-op.RowUsed-op.RowLeased <= 0
		}
	}
	close(ch)
	l.setDown(err)
	return failed
}

// Release gives back recipients admitted for a transaction that did not
// complete (refused at DATA, reset, aborted). Recipients of a window that
// has ended meanwhile are not given back.
func (l *Limiter) Release(r Reservation) {
	if r.Empty() {
		return
	}
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range r.items {
		if h.key.Window == Day {
			l.m.recipients.WithLabelValues(h.kind.String(), "released").Add(float64(h.n))
		}
		if !now.Before(h.end) {
			continue
		}
		c := l.counters[h.key]
		if c == nil {
			// Forgotten while idle: the next sync settles the negative
			// count (its limit is not known here, so nothing is leased).
			c = &counter{key: h.key, orgID: h.orgID, end: h.end, lastUse: now}
			l.counters[h.key] = c
		}
		c.used -= h.n
	}
}

// exchange runs one store exchange, bounded by Options.Timeout and not
// cancelled with the caller (a client that goes away must not abort a
// lease shared by every transaction).
func (l *Limiter) exchange(ctx context.Context, kind string, ops []Op) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.opts.Timeout)
	defer cancel()
	start := time.Now()
	err := l.st.Exchange(ctx, ops)
	l.m.exchangeSeconds.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	result := "ok"
	if err != nil {
		result = "error"
		err = fmt.Errorf("limits: %s: %w", kind, err)
	}
	l.m.exchanges.WithLabelValues(kind, result).Inc()
	return err
}

// setDown records the outcome of an exchange, logging changes only.
// Called with l.mu held.
func (l *Limiter) setDown(err error) {
	switch {
	case err != nil && !l.down:
		l.log.Error("sending limit counters unreachable: admitting from the slices held, refusing beyond them with 451 4.7.0", "err", err)
	case err == nil && l.down:
		l.log.Info("sending limit counters reachable again")
	}
	l.down = err != nil
}
