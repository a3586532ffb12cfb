package gate

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/policy"
)

// metrics are the gate's Prometheus series, registered when the gate is
// made so that they exist (at zero) from the start.
type metrics struct {
	sandbox  *prometheus.CounterVec // recipients, by result
	refusals *prometheus.CounterVec // messages and senders refused, by Refusal.Reason
}

// refusalReasons are the values of Refusal.Reason: the policy's reasons
// and the gate's own.
var refusalReasons = []string{
	string(policy.NotVerified), string(policy.Revoked), string(policy.UnknownDomain), string(policy.NotGranted),
	string(policy.NotConfirmed), string(policy.SandboxLimit), string(policy.BadAddress), string(policy.NotReady),
	string(policy.Internal), "header", "body", "unknown_account", "null_sender",
	"suppressed_bounce", "suppressed_complaint", "suppressed_manual",
}

// refused counts r (nil: nothing) and returns it.
func (m *metrics) refused(r *Refusal) *Refusal {
	if r != nil {
		m.refusals.WithLabelValues(r.Reason).Inc()
	}
	return r
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
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendergate_refusals_total",
		Help: "Messages (submission, milter) and envelope senders (policy service) refused by the gate, by reason: " +
			strings.Join(refusalReasons, ", ") + ". Temporary ones (not_ready, internal, sandbox_limit) are 451s.",
	}, []string{"reason"})
	for _, r := range refusalReasons {
		m.refusals.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.sandbox, m.refusals)
	}
	return m
}
