package main

import (
	"fmt"
	"io"
)

// report is every figure of one run. Sizes in MiB, times in seconds unless
// a stats (milliseconds).
type report struct {
	Database        string
	Orgs, Domains   int
	ColdStart       float64
	ColdStartB      float64
	Settle          float64 // after /healthz, until the start-up work (key warm-up) stopped
	RSSLoaded       float64 // at /healthz
	RSSSettled      float64
	RSSAfter        float64 // after every write
	RSSB, RSSBAfter float64
	IdleCPU         float64 // % of one core
	IdleCPUB        float64
	IdleChecks      float64 // background checks during the idle window
	Auth            stats   // the AUTH command over SMTP
	Message         string
	DNS             stats
	DNSBad          int
	AddDomain       stats
	SetAccess       stats
	Rotate          stats
	Adds            stats
	AddsWanted      int
	AddsWall        float64
	AddsCPU         float64 // ms of sendergate CPU per add
	AddsDBCPU       float64 // ms of PostgreSQL backend CPU per add (0 on SQLite: in-process)
	AddsSecondCPU   float64 // ms of the second instance's CPU per add (applying the changes it polls)
	PropRotate      stats   // from A's answer until B accepts the new password
	PropDomain      stats   // until B's zone serves the new domain's DKIM key
	PropDomainReq   stats   // the same from the request to A (A answers after its own reload)
	PropAccess      stats   // until B refuses mail from the restricted domain
	Errors          []string
}

// verdict is "yes" or "**no**".
func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// addsProjected is the projected wall time of every wanted add, from the
// ones done.
func (r *report) addsProjected() float64 {
	if r.Adds.N == 0 {
		return 0
	}
	return r.AddsWall * float64(r.AddsWanted) / float64(r.Adds.N)
}

func (r *report) markdown(w io.Writer) {
	fmt.Fprintf(w, "\n%s: %d organizations, %d sending domains\n\n", r.Database, r.Orgs, r.Domains)
	fmt.Fprintln(w, "| target | measured | met? |")
	fmt.Fprintln(w, "|---|---|---|")
	fmt.Fprintf(w, "| cold start to a loaded snapshot < 20 s | %.1f s%s | %s |\n", r.ColdStart,
		ifB(r.ColdStartB > 0, fmt.Sprintf(" (second instance %.1f s)", r.ColdStartB)), verdict(r.ColdStart < 20))
	peak := max(r.RSSLoaded, r.RSSSettled, r.RSSAfter)
	fmt.Fprintf(w, "| RSS < 1 GiB | %.0f MiB loaded, %.0f MiB after start-up work (%.0f s), %.0f MiB after the writes | %s |\n",
		r.RSSLoaded, r.RSSSettled, r.Settle, r.RSSAfter, verdict(peak > 0 && peak < 1024))
	addsLine := fmt.Sprintf("%d in %.1f s (%s)", r.Adds.N, r.AddsWall, r.Adds)
	if r.Adds.N < r.AddsWanted && r.Adds.N > 0 {
		addsLine += fmt.Sprintf("; stopped at the time limit, %d would take about %.0f s", r.AddsWanted, r.addsProjected())
	}
	if r.AddsWanted > 0 {
		fmt.Fprintf(w, "| %d Ed25519 domains added one by one < 60 s | %s | %s |\n", r.AddsWanted, addsLine,
			verdict(r.Adds.N == r.AddsWanted && r.AddsWall < 60))
		fmt.Fprintf(w, "| CPU per one-by-one add (what load from others does not change) | sendergate %.2f ms%s | |\n", r.AddsCPU,
			ifB(r.AddsDBCPU > 0, fmt.Sprintf(", PostgreSQL backends %.2f ms", r.AddsDBCPU))+
				ifB(r.AddsSecondCPU > 0, fmt.Sprintf(", second instance %.2f ms", r.AddsSecondCPU)))
	}
	fmt.Fprintf(w, "| idle CPU < 5 %% of a core | %.2f %% (%.0f background checks in the window)%s | %s |\n", r.IdleCPU, r.IdleChecks,
		ifB(r.IdleCPUB > 0, fmt.Sprintf("; second instance %.2f %%", r.IdleCPUB)), verdict(r.IdleCPU < 5))
	for _, x := range []struct {
		name string
		s    stats
	}{{"add domain", r.AddDomain}, {"set access", r.SetAccess}, {"rotate password", r.Rotate}} {
		fmt.Fprintf(w, "| admin write p99 < 50 ms: %s | %s | %s |\n", x.name, x.s, verdict(x.s.N > 0 && x.s.P99 < 50))
	}
	for _, x := range []struct {
		name string
		s    stats
	}{{"rotated password accepted by AUTH", r.PropRotate}, {"new domain's DKIM key in DNS", r.PropDomain}, {"restricted domain refused (550 5.7.1)", r.PropAccess}} {
		if r.ColdStartB == 0 && x.s.N == 0 {
			fmt.Fprintf(w, "| enforced by a second instance < 1 s: %s | not measured: one instance (-second) | |\n", x.name)
			continue
		}
		fmt.Fprintf(w, "| enforced by a second instance < 1 s: %s | %s | %s |\n", x.name, x.s, verdict(x.s.N > 0 && x.s.Max < 1000))
	}
	fmt.Fprintf(w, "| the new domain's DKIM key in the second instance's DNS, from the request to the first | %s | |\n", r.PropDomainReq)
	fmt.Fprintf(w, "| DNS answer for a DKIM name p99 < 1 ms | %s, %d bad | %s |\n", r.DNS, r.DNSBad, verdict(r.DNS.N > 0 && r.DNSBad == 0 && r.DNS.P99 < 1))
	fmt.Fprintf(w, "| SMTP AUTH (the command, seeded accounts) | %s | |\n", r.Auth)
	fmt.Fprintf(w, "| one message | %s | %s |\n", r.Message, verdict(len(r.Message) >= 3 && r.Message[:3] == "250"))
	for _, e := range r.Errors {
		fmt.Fprintf(w, "\nerror: %s\n", e)
	}
}

func ifB(c bool, s string) string {
	if c {
		return s
	}
	return ""
}
