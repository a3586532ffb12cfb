package main

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/store"
)

// dkimBatch is how many due steps one look at the store takes.
const dkimBatch = 100

// setupRotation starts the DKIM key loop (issue 13): every tick it rotates
// the domains whose active key is older than dkim.rotate_interval (when
// not 0), and removes the retired keys past dkim.retire_after, publishing
// a fresh next key at the freed selector. Several instances may run it:
// each step is conditional in the store (store.ErrConflict), so it happens
// once. It also registers the key metrics on d.reg.
func (d *daemon) setupRotation(bg context.Context) {
	d.reg.MustRegister(newKeyCollector(d.st))
	interval, retire := d.cfg.DKIM.RotateInterval.Duration, d.cfg.DKIM.RetireAfter.Duration
	tick := rotationTick(interval, retire)
	d.log.Info("DKIM key rotation", "rotate_interval", interval.String(), "retire_after", retire.String(), "tick", tick.String())
	loop := &rotationLoop{d: d, interval: interval, failed: map[string]time.Time{}, backoff: min(max(interval, time.Minute), 15*time.Minute)}
	done := make(chan struct{})
	ctx, stop := context.WithCancel(bg)
	go func() {
		defer close(done)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			loop.round(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	d.onClose(func(ctx context.Context) error {
		stop()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// rotationTick is min(rotate_interval/4, retire_after/4, 30s), at least
// 1s: a due step is taken within a quarter of its period.
func rotationTick(interval, retire time.Duration) time.Duration {
	tick := 30 * time.Second
	if interval > 0 {
		tick = min(tick, interval/4)
	}
	if retire > 0 {
		tick = min(tick, retire/4)
	}
	return max(tick, time.Second)
}

// rotationLoop is the state of the key loop of one instance: the domains
// whose automatic rotation failed its DNS check, retried after backoff.
type rotationLoop struct {
	d        *daemon
	interval time.Duration
	backoff  time.Duration
	failed   map[string]time.Time // domain id -> when to try again
}

func (l *rotationLoop) round(ctx context.Context) {
	now := time.Now()
	changed := false
	removals, err := l.d.st.RemovalsDue(ctx, store.At(now), dkimBatch)
	if err != nil && ctx.Err() == nil {
		l.d.log.Warn("DKIM keys: reading the removals due failed", "err", err)
	}
	for _, due := range removals {
		err := l.d.domains.RemoveRetired(ctx, due)
		switch {
		case err == nil:
			changed = true
		case errors.Is(err, store.ErrConflict) || ctx.Err() != nil:
		default:
			l.d.log.Warn("DKIM keys: removing a retired key failed", "domain_id", due.DomainID, "err", err)
		}
	}
	if l.interval > 0 {
		rotations, err := l.d.st.RotationsDue(ctx, store.At(now.Add(-l.interval)), dkimBatch)
		if err != nil && ctx.Err() == nil {
			l.d.log.Warn("DKIM keys: reading the rotations due failed", "err", err)
		}
		for _, due := range rotations {
			if l.failed[due.DomainID].After(now) {
				continue
			}
			dom, err := l.d.domains.RotateDue(ctx, due)
			var ce *domains.CheckError
			switch {
			case err == nil:
				changed = true
				delete(l.failed, due.DomainID)
				l.d.log.Info("DKIM key rotated automatically", "domain", dom.Name, "selector", dom.DKIMSelector)
			case errors.Is(err, store.ErrConflict) || ctx.Err() != nil:
			case errors.As(err, &ce):
				l.failed[due.DomainID] = now.Add(l.backoff)
				l.d.log.Warn("DKIM keys: automatic rotation refused, signing stays on the current key", "domain", dom.Name,
					"reason", ce.Records[0].Reason, "retry_in", l.backoff.String())
			default:
				l.failed[due.DomainID] = now.Add(l.backoff)
				l.d.log.Warn("DKIM keys: automatic rotation failed", "domain_id", due.DomainID, "err", err)
			}
		}
	}
	if changed {
		l.d.changed() // this instance signs with the new key at once
	}
}

// keyCollector exports the DKIM keys by state and the age of the oldest
// active key, read from the store at scrape time.
type keyCollector struct {
	st     *store.Store
	keys   *prometheus.Desc
	oldest *prometheus.Desc
}

// keyStates are the series of sendergate_dkim_keys, present from the start.
var keyStates = []string{store.KeyNext, store.KeyActive, store.KeyRetired, store.KeyRemoved}

func newKeyCollector(st *store.Store) *keyCollector {
	return &keyCollector{st: st,
		keys: prometheus.NewDesc("sendergate_dkim_keys",
			"DKIM keys by state: next (published, not signing yet), active (signing), retired (still published for dkim.retire_after), removed (history).",
			[]string{"state"}, nil),
		oldest: prometheus.NewDesc("sendergate_dkim_oldest_active_key_age_seconds",
			"Age of the longest-signing active DKIM key since its activation; 0 without keys. Above dkim.rotate_interval, automatic rotation is stuck (see the logs).",
			nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *keyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.keys
	ch <- c.oldest
}

// Collect implements prometheus.Collector; a failed read exports nothing.
func (c *keyCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.st.KeyStateCounts(ctx)
	if err != nil {
		return
	}
	for _, s := range keyStates {
		ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(counts[s]), s)
	}
	var age float64
	if t, err := c.st.OldestActiveKey(ctx); err == nil && !t.IsZero() {
		age = time.Since(t.Time).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
