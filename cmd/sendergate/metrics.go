package main

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/policy"
)

// domainStatuses are the lifecycle states, each a series of
// sendergate_domains from the start.
var domainStatuses = []string{"pending", "verified", "failing", "revoked"}

// snapshotCollector exports what the policy snapshot knows, at scrape
// time: the domains by status, the snapshot's generation (the store state
// version it was built from) and when it was last known current.
type snapshotCollector struct {
	engine     *policy.Engine
	domains    *prometheus.Desc
	generation *prometheus.Desc
	lastLoad   *prometheus.Desc

	mu     sync.Mutex
	cached *policy.Snapshot // the snapshot counts was computed on
	counts map[string]int
}

func newSnapshotCollector(e *policy.Engine) *snapshotCollector {
	return &snapshotCollector{engine: e,
		domains: prometheus.NewDesc("sendergate_domains",
			"Domains by status (pending, verified, failing, revoked) in the policy snapshot; sandbox domains apart.", []string{"status"}, nil),
		generation: prometheus.NewDesc("sendergate_policy_snapshot_generation",
			"Store state version the policy snapshot in use was built from; instances sharing a database converge on the same value.", nil, nil),
		lastLoad: prometheus.NewDesc("sendergate_policy_snapshot_last_load_timestamp_seconds",
			"Unix time the policy snapshot was last known current: its last load, or the last poll that found nothing changed (each second). Alert on time() minus this; 0 before the first load.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.domains
	ch <- c.generation
	ch <- c.lastLoad
}

// Collect implements prometheus.Collector. Counting visits every domain,
// so it is done once per snapshot, not per scrape.
func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	var last float64
	if t := c.engine.LastCurrent(); !t.IsZero() {
		last = float64(t.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(c.lastLoad, prometheus.GaugeValue, last)
	snap, err := c.engine.Current()
	var gen float64
	counts := map[string]int{}
	if err == nil {
		gen = float64(snap.Version())
		counts = c.count(snap)
	}
	ch <- prometheus.MustNewConstMetric(c.generation, prometheus.GaugeValue, gen)
	for _, s := range domainStatuses {
		ch <- prometheus.MustNewConstMetric(c.domains, prometheus.GaugeValue, float64(counts[s]), s)
	}
}

func (c *snapshotCollector) count(snap *policy.Snapshot) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached != snap {
		c.cached, c.counts = snap, snap.DomainsByStatus()
	}
	return c.counts
}
