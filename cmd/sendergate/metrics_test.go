package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestMetricsOnAFreshDaemon checks that /metrics of a daemon that has done
// nothing yet lists every series an operator alerts on (at zero), and that
// they move when something happens.
func TestMetricsOnAFreshDaemon(t *testing.T) {
	gates := freeUDPTCPPorts(t, 2)
	in := startDaemon(t, daemonOpts{extra: fmt.Sprintf("[milter]\nlisten = %q\n[policyd]\nlisten = %q\n", gates[0], gates[1])})
	body := in.metrics(t)
	for _, series := range []string{
		`sendergate_refusals_total{reason="not_verified"} 0`,
		`sendergate_refusals_total{reason="not_granted"} 0`,
		`sendergate_refusals_total{reason="header"} 0`,
		`sendergate_refusals_total{reason="sandbox_limit"} 0`,
		`sendergate_refusals_total{reason="unknown_domain"} 0`,
		`sendergate_domains{status="pending"} 0`,
		`sendergate_domains{status="verified"} 0`,
		`sendergate_domains{status="failing"} 0`,
		`sendergate_domains{status="revoked"} 0`,
		`sendergate_domains_checks_total{result="ok"} 0`,
		`sendergate_domains_checks_total{result="missing"} 0`,
		`sendergate_zone_queries_total{rcode="NOERROR"} 0`,
		`sendergate_zone_queries_total{rcode="NXDOMAIN"} 0`,
		`sendergate_zone_queries_total{rcode="REFUSED"} 0`,
		`sendergate_admin_requests_total{code="200",route="GET /healthz"}`,
		`sendergate_policy_snapshot_generation `,
		`sendergate_policy_snapshot_last_load_timestamp_seconds `,
		`sendergate_milter_messages_total{result="accepted"} 0`,
		`sendergate_milter_messages_total{result="rejected"} 0`,
		`sendergate_milter_peer_refused_total 0`,
		`sendergate_policyd_requests_total{action="dunno"} 0`,
		`sendergate_policyd_requests_total{action="reject"} 0`,
		`sendergate_policyd_peer_refused_total 0`,
		`sendergate_smtpd_transactions_total{result="accepted"} 0`,
		`sendergate_sandbox_recipients_total{result="admitted"} 0`,
	} {
		if !strings.Contains(body, "\n"+series) {
			t.Errorf("a fresh daemon's /metrics lacks %s", series)
		}
	}
	// The last load is a timestamp of now, not an age.
	last, err := strconv.ParseFloat(metricValue(body, "sendergate_policy_snapshot_last_load_timestamp_seconds"), 64)
	if err != nil || time.Since(time.Unix(int64(last), 0)) > time.Minute {
		t.Errorf("last load timestamp %v (%v), want about now", last, err)
	}

	// They count what happens.
	key := in.adminKey(t)
	in.call(t, key, "POST", "/v1/orgs", `{"name":"acme"}`, nil)
	var acct map[string]string
	in.call(t, key, "POST", "/v1/orgs/acme/smtp-accounts", `{"name":"app"}`, &acct)
	in.call(t, key, "POST", "/v1/orgs/acme/domains", `{"name":"pending.example"}`, nil)
	err = submit(t, in.smtp, acct["username"], acct["password"], "a@pending.example", "x@example.org", "no")
	if code, _ := smtpCode(err); code != 550 {
		t.Fatalf("a pending domain: %v", err)
	}
	q := new(dns.Msg)
	q.SetQuestion("nope.sg.localhost.", dns.TypeTXT)
	if _, _, err := new(dns.Client).Exchange(q, in.dns); err != nil {
		t.Fatal(err)
	}
	body = in.metrics(t)
	for series, want := range map[string]string{
		`sendergate_refusals_total{reason="not_verified"}`:                                "1",
		`sendergate_domains{status="pending"}`:                                            "1",
		`sendergate_zone_queries_total{rcode="NXDOMAIN"}`:                                 "1",
		`sendergate_admin_requests_total{code="201",route="POST /v1/orgs"}`:               "1",
		`sendergate_admin_requests_total{code="201",route="POST /v1/orgs/{org}/domains"}`: "1",
	} {
		if got := metricValue(body, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	if gen, _ := strconv.Atoi(metricValue(body, "sendergate_policy_snapshot_generation")); gen < 3 {
		t.Errorf("snapshot generation %d after three writes", gen)
	}
}
