package limits

import (
	"context"
	"fmt"
	"time"
)

// Run settles with the store every Options.Sync until ctx is done. It does
// not give the slices back at the end: call Close for that.
func (l *Limiter) Run(ctx context.Context) {
	t := time.NewTicker(l.opts.Sync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = l.Sync(ctx) // failures are logged by setDown, once per outage
	}
}

// Close settles everything and gives back every slice, so that other
// instances can use them (graceful shutdown). Admit still works after
// Close, leasing anew.
func (l *Limiter) Close(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	return l.Sync(ctx)
}

// Sync settles with the store in one exchange: what each counter admitted
// since the last sync moves into the shared count, refusals are counted,
// the first refusal of a window marks its limit reached (one event for
// all instances), and each slice is resized to what the counter used in
// the last interval (twice that, at most half the free budget beyond
// what it already holds; idle counters give theirs back and are
// forgotten).
func (l *Limiter) Sync(ctx context.Context) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	now := l.opts.Now()
	l.mu.Lock()
	ops := l.settlements(now)
	l.m.counters.Set(float64(len(l.counters)))
	down := l.down
	l.mu.Unlock()
	var err error
	if len(ops) > 0 || down {
		// With the store down, an empty exchange tells when it is back
		// even when no counter has anything to settle.
		err = l.exchange(ctx, "sync", ops)
	}
	l.mu.Lock()
	l.settled(ops, err)
	if len(ops) > 0 || down {
		l.setDown(err)
	}
	l.mu.Unlock()
	if err == nil && now.Sub(l.cleaned) >= cleanEvery {
		l.cleaned = now
		cctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
		defer cancel()
		if cerr := l.st.DeleteCounters(cctx, now.Add(-keepRows).UnixMilli()); cerr != nil {
			l.log.Warn("deleting old sending limit counters failed", "err", cerr)
		}
	}
	return err
}

// settlements builds the ops of a sync and marks the part of each slice
// it gives back as returning. Called with l.mu held.
func (l *Limiter) settlements(now time.Time) []Op {
	var ops []Op
	for k, c := range l.counters {
		active := !l.closing && now.Before(c.end) && now.Sub(c.lastUse) < idleAfter
		u := c.used
		unused := c.held - u
		var keep, want int64
		if c.limit > 0 && active {
			// Twice the last interval's use; a counter idle this interval
			// but active within idleAfter keeps 1 % of the limit, so an
			// occasional sender does not wait on the store every time.
			target := max(2*c.demand, c.limit/100)
			keep = max(0, min(unused, target))
			want = target - keep
		}
		r := unused - keep // what goes back (for an unlimited counter: -u, nothing)
		if u == 0 && r == 0 && want == 0 && c.refused == 0 && !c.reached {
			if c.held == 0 && !active && c.refill == nil {
				delete(l.counters, k)
			}
			continue
		}
		c.returning = max(0, r)
		op := Op{Key: k, OrgID: c.orgID, End: c.end.UnixMilli(), Limit: c.limit, Used: u, Leased: -u - r,
			Refused: c.refused, Want: want, Keep: keep, Reached: c.reached, Exists: c.exists}
		if c.reached {
			op.ReachedAt = c.hitAt.UnixMilli()
			start := time.UnixMilli(k.Start).UTC()
			op.Event = fmt.Sprintf("%s %s reached its limit of %s per %s (window %s to %s UTC)",
				k.Kind, c.name, Recipients(c.hitLimit), k.Window, start.Format("2006-01-02 15:04:05"), c.end.UTC().Format("15:04:05"))
		}
		ops = append(ops, op)
	}
	sortOps(ops)
	return ops
}

// settled applies the outcome of a sync's exchange. Called with l.mu
// held.
func (l *Limiter) settled(ops []Op, err error) {
	for i := range ops {
		op := &ops[i]
		c := l.counters[op.Key] // only settlements deletes, under syncMu
		c.returning = 0
		if err != nil {
			continue
		}
		c.exists = true
		c.used -= op.Used
		c.held += op.Leased + op.Granted
		c.refused -= op.Refused
		if op.Reached {
			c.reached = false
		}
		c.demand = 0
		c.exhausted = false
		c.rowUsed, c.rowLeased = op.RowUsed, op.RowLeased
		if op.FirstReached {
			l.m.reached.WithLabelValues(op.Key.Kind.String(), op.Key.Window.String()).Inc()
			l.log.Warn("sending limit reached", "scope", op.Key.Kind.String(), "name", c.name,
				"window", op.Key.Window.String(), "limit", c.hitLimit, "frees", c.end.UTC())
		}
	}
}
