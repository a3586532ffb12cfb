package zone

import (
	"fmt"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the zone server's counters. They are plain atomics, so a
// server counts whether or not a Registerer was given; register exports
// them.
type metrics struct {
	notifySent   atomic.Uint64 // NOTIFYs acknowledged by a secondary
	notifyFailed atomic.Uint64 // NOTIFYs given up on after every attempt, or refused
	axfr         atomic.Uint64
	ixfr         atomic.Uint64
	upToDate     atomic.Uint64
	udpSOAOnly   atomic.Uint64
	refused      atomic.Uint64
	queries      [len(queryRcodes) + 1]atomic.Uint64 // answers by queryRcodes index; the last: any other rcode
}

// queryRcodes are the response codes counted one by one in
// sendergate_zone_queries_total; others count as "other" (BADVERS).
var queryRcodes = [6]int{dns.RcodeSuccess, dns.RcodeNameError, dns.RcodeRefused, dns.RcodeFormatError,
	dns.RcodeNotImplemented, dns.RcodeServerFailure}

// answered counts one answer by its response code.
func (m *metrics) answered(rcode int) {
	for i, rc := range queryRcodes {
		if rc == rcode {
			m.queries[i].Add(1)
			return
		}
	}
	m.queries[len(queryRcodes)].Add(1)
}

// transfers returns the counter of one kind of transfer answer.
func (m *metrics) transfers(kind string) *atomic.Uint64 {
	switch kind {
	case kindIXFR:
		return &m.ixfr
	case kindUpToDate:
		return &m.upToDate
	case kindUDPFallback:
		return &m.udpSOAOnly
	default:
		return &m.axfr
	}
}

// register exports the counters and the served serial on reg (nil: not
// exported).
func (m *metrics) register(reg prometheus.Registerer, s *Server) error {
	if reg == nil {
		return nil
	}
	counter := func(name, help string, v *atomic.Uint64, labels prometheus.Labels) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(v.Load()) })
	}
	const transfers = "sendergate_zone_transfers_total"
	const transfersHelp = "Zone transfer answers by kind: axfr (the full zone), ixfr (changes since the client's serial), current (the client is up to date), udp_soa_only (IXFR over UDP that did not fit)."
	cs := []prometheus.Collector{
		counter("sendergate_zone_notify_sent_total", "NOTIFY messages (RFC 1996) acknowledged by a secondary.", &m.notifySent, nil),
		counter("sendergate_zone_notify_failed_total", "NOTIFY messages given up on after every retry, or refused by the secondary.", &m.notifyFailed, nil),
		counter(transfers, transfersHelp, &m.axfr, prometheus.Labels{"kind": kindAXFR}),
		counter(transfers, transfersHelp, &m.ixfr, prometheus.Labels{"kind": kindIXFR}),
		counter(transfers, transfersHelp, &m.upToDate, prometheus.Labels{"kind": kindUpToDate}),
		counter(transfers, transfersHelp, &m.udpSOAOnly, prometheus.Labels{"kind": kindUDPFallback}),
		counter("sendergate_zone_transfers_refused_total", "AXFR/IXFR requests refused: peer not in dns.allow_transfer, or AXFR over UDP.", &m.refused, nil),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendergate_zone_serial",
			Help: "SOA serial of the provider zone served by this instance.",
		}, func() float64 { return float64(s.Serial()) }),
	}
	const queries = "sendergate_zone_queries_total"
	const queriesHelp = "Queries answered (zone transfers apart), by rcode: NOERROR, NXDOMAIN (a name not in the zone), REFUSED (outside the zone), FORMERR, NOTIMP, SERVFAIL, other."
	for i := range m.queries {
		rcode := "other"
		if i < len(queryRcodes) {
			rcode = dns.RcodeToString[queryRcodes[i]]
		}
		cs = append(cs, counter(queries, queriesHelp, &m.queries[i], prometheus.Labels{"rcode": rcode}))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("zone: register metrics: %w", err)
		}
	}
	return nil
}
