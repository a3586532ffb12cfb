package smtpd

import (
	"fmt"
	"math"

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
	refused      *prometheus.CounterVec // by refused* reason
	closed       *prometheus.CounterVec // by timeoutKind label or command_too_long
}

// newMetrics creates the collectors and registers them on reg (nil: not
// registered), with gauges of the policy snapshot's age, the open
// connections and the buffered message bytes of s.
func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendergate_smtpd_connections_refused_total",
			Help: "Connections refused before the greeting, by reason: max_connections, max_connections_per_ip (421 4.7.0), proxy_header (a trusted proxy sent no valid PROXY header).",
		}, []string{"reason"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendergate_smtpd_connections_closed_total",
			Help: "Connections the server closed on a limit, by reason: pre_auth_idle, idle, read_timeout, data_time_limit (421 4.4.2), command_too_long (500 5.5.2).",
		}, []string{"reason"}),
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
	// Export zeros.
	for _, r := range []string{resultAccepted, resultRefused, resultTempfail, resultError} {
		m.transactions.WithLabelValues(r)
	}
	for _, r := range []string{refusedTotal, refusedPerIP, refusedProxy} {
		m.refused.WithLabelValues(r)
	}
	for _, k := range []timeoutKind{timeoutPreAuth, timeoutIdle, timeoutRead, timeoutData} {
		m.closed.WithLabelValues(k.label())
	}
	m.closed.WithLabelValues("command_too_long")
	if reg == nil {
		return m, nil
	}
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sendergate_smtpd_snapshot_age_seconds",
		Help: "Seconds since the policy snapshot in use was built (it is rebuilt when the data changes); +Inf before the first load.",
	}, func() float64 {
		snap, err := s.pol.Current()
		if err != nil {
			return math.Inf(1)
		}
		return s.cfg.Now().Sub(snap.Built()).Seconds()
	})
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sendergate_smtpd_connections_open",
		Help: "Submission connections open now (counted against submission.max_connections).",
	}, func() float64 { return float64(s.counter.open()) })
	buffered := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sendergate_smtpd_buffered_bytes",
		Help: "Message bytes held by transactions now (counted against submission.max_buffered_bytes).",
	}, func() float64 { return float64(s.BufferedBytes()) })
	for _, c := range []prometheus.Collector{m.transactions, m.authFailures, m.sign, m.relay, m.refused, m.closed, age, open, buffered} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("smtpd: register metrics: %w", err)
		}
	}
	return m, nil
}
