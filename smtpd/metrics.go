package smtpd

import (
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Transaction results, the values of the "result" label.
const (
	resultAccepted = "accepted" // the upstream answered 250
	resultRefused  = "refused"  // a 5xx reply (policy, header, size or the upstream's)
	resultTempfail = "tempfail" // a 4xx reply other than an internal error
	resultError    = "error"    // an internal error (451 4.3.0) or a broken connection
)

// metrics are the submission server's Prometheus collectors. They always
// exist; they are registered only when Config.Registerer is set.
type metrics struct {
	transactions *prometheus.CounterVec
	authFailures prometheus.Counter
	sign         prometheus.Histogram
	relay        prometheus.Histogram
}

// newMetrics creates the collectors and registers them, with a gauge of
// the policy snapshot's age, on reg (nil: not registered).
func newMetrics(reg prometheus.Registerer, pol Policy, now func() time.Time) (*metrics, error) {
	m := &metrics{
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendergate_smtpd_transactions_total",
			Help: "SMTP submission transactions that reached DATA, by result: accepted, refused, tempfail, error.",
		}, []string{"result"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendergate_smtpd_auth_failures_total",
			Help: "Failed AUTH attempts (bad credentials or authorization identity).",
		}),
		sign: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sendergate_smtpd_sign_seconds",
			Help:    "Time to DKIM-sign one accepted message.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 12), // 0.2ms .. 0.4s
		}),
		relay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sendergate_smtpd_relay_seconds",
			Help:    "Time to hand one message to the upstream (or outbox) and get its verdict.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms .. 16s
		}),
	}
	for _, r := range []string{resultAccepted, resultRefused, resultTempfail, resultError} {
		m.transactions.WithLabelValues(r) // export zeros
	}
	if reg == nil {
		return m, nil
	}
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sendergate_smtpd_snapshot_age_seconds",
		Help: "Seconds since the policy snapshot in use was built (it is rebuilt when the data changes); +Inf before the first load.",
	}, func() float64 {
		s, err := pol.Current()
		if err != nil {
			return math.Inf(1)
		}
		return now().Sub(s.Built()).Seconds()
	})
	for _, c := range []prometheus.Collector{m.transactions, m.authFailures, m.sign, m.relay, age} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("smtpd: register metrics: %w", err)
		}
	}
	return m, nil
}
