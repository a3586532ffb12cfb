package limits

import "github.com/prometheus/client_golang/prometheus"

// metrics are the limiter's Prometheus series, registered when it is made
// so that they exist (at zero) from the start.
type metrics struct {
	recipients      *prometheus.CounterVec
	exchanges       *prometheus.CounterVec
	exchangeSeconds *prometheus.HistogramVec
	reached         *prometheus.CounterVec
	counters        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		recipients: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendergate_limits_recipients_total",
			Help: "Recipients checked against the sending limits, by scope (account, organization) and outcome: admitted (counted in every scope), refused (451 4.7.0, counted on the scope whose limit was reached), unavailable (451 4.7.0: the slice held was spent and the shared counters could not be reached), released (admitted, then given back because the transaction did not complete).",
		}, []string{"scope", "outcome"}),
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendergate_limits_store_exchanges_total",
			Help: "Transactions with the shared limit counters, by kind (sync: the periodic settlement; lease: a slice spent before the next sync) and result (ok, error).",
		}, []string{"kind", "result"}),
		exchangeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sendergate_limits_store_exchange_seconds",
			Help:    "Duration of transactions with the shared limit counters, by kind (sync, lease).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2},
		}, []string{"kind"}),
		reached: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendergate_limits_reached_total",
			Help: "Windows whose limit was reached for the first time (one limit.reached event, counted by the instance that recorded it), by scope (account, organization) and window (minute, hour, day).",
		}, []string{"scope", "window"}),
		counters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sendergate_limits_counters",
			Help: "Counters (scope and window) this instance keeps in memory.",
		}),
	}
	for _, scope := range []string{"account", "organization"} {
		for _, o := range []string{"admitted", "refused", "unavailable", "released"} {
			m.recipients.WithLabelValues(scope, o)
		}
		for w := Minute; w < numWindows; w++ {
			m.reached.WithLabelValues(scope, w.String())
		}
	}
	for _, k := range []string{"sync", "lease"} {
		m.exchangeSeconds.WithLabelValues(k)
		for _, r := range []string{"ok", "error"} {
			m.exchanges.WithLabelValues(k, r)
		}
	}
	if reg != nil {
		reg.MustRegister(m.recipients, m.exchanges, m.exchangeSeconds, m.reached, m.counters)
	}
	return m
}
