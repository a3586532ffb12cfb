package milter

import "github.com/prometheus/client_golang/prometheus"

type milterMetrics struct {
	messages *prometheus.CounterVec
}

func newMilterMetrics(reg prometheus.Registerer) *milterMetrics {
	m := &milterMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendergate_milter_messages_total",
			Help: "Messages decided by the milter gate, by result: accepted (signed), rejected, tempfailed, unauthenticated (passed untouched).",
		}, []string{"result"}),
	}
	for _, r := range []string{"accepted", "rejected", "tempfailed", "unauthenticated"} {
		m.messages.WithLabelValues(r) // every series exists from the start, at zero
	}
	if reg != nil {
		reg.MustRegister(m.messages)
	}
	return m
}

type policydMetrics struct {
	requests *prometheus.CounterVec
	errors   prometheus.Counter
}

func newPolicydMetrics(reg prometheus.Registerer) *policydMetrics {
	m := &policydMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendergate_policyd_requests_total",
			Help: "Policy delegation requests answered, by action: dunno, reject, defer_if_permit, limit (451 4.7.0: a sending limit reached, with policyd limits on), suppressed (550 5.1.1: a suppressed recipient).",
		}, []string{"action"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendergate_policyd_protocol_errors_total",
			Help: "Connections closed because of a malformed, oversized or timed-out request.",
		}),
	}
	for _, a := range []string{"dunno", "reject", "defer_if_permit", "limit"} {
		m.requests.WithLabelValues(a) // every series exists from the start, at zero
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.errors)
	}
	return m
}
