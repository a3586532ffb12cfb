package gate

import "github.com/prometheus/client_golang/prometheus"

// metrics are the gate's Prometheus series, registered when the gate is
// made so that they exist (at zero) from the start.
type metrics struct {
	sandbox *prometheus.CounterVec // recipients, by result
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sandbox: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendergate_sandbox_recipients_total",
			Help: "Recipients of sandbox-domain mail counted against sandbox.daily_limit (which counts recipients, not messages), by result: admitted, limit (refused with 451 4.7.1: the whole message), error (counter unavailable: 451 4.3.0).",
		}, []string{"result"}),
	}
	for _, r := range []string{"admitted", "limit", "error"} {
		m.sandbox.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.sandbox)
	}
	return m
}
