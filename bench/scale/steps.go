package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sendergate/sendergate/bench/internal/seeddb"
)

// smtp: AUTH with seeded accounts spread over the dataset (the AUTH
// command's latency), then one message from a seeded domain.
func (m *measure) smtp(ctx context.Context) error {
	var lat []time.Duration
	deadline := time.Now().Add(time.Minute)
	for k := 0; k < m.o.authN && time.Now().Before(deadline) && ctx.Err() == nil; k++ {
		i := m.spread(k, m.o.authN, 3)
		code, d, err := auth(m.a.smtp, seeddb.Username(i), m.password(i))
		if err != nil {
			return err
		}
		if code != 235 {
			return fmt.Errorf("AUTH %s: %d, want 235", seeddb.Username(i), code)
		}
		lat = append(lat, d)
	}
	m.rep.Auth = summarize(lat)
	m.logf("AUTH: %s", m.rep.Auth)
	i := m.spread(1, 2, 5)
	code, text, err := send(m.a.smtp, seeddb.Username(i), m.password(i), "news@"+seeddb.DomainName(i, 1))
	if err != nil {
		return err
	}
	m.rep.Message = fmt.Sprintf("%d %s", code, text)
	if code != 250 {
		return fmt.Errorf("message from %s: %d %s, want 250", seeddb.DomainName(i, 1), code, text)
	}
	m.logf("message: 250")
	return nil
}

// dkimNames reads, through the API, the DKIM CNAME targets (names in the
// provider zone) of the domains of n organizations spread over the dataset.
func (m *measure) dkimNames(n int) ([]string, error) {
	var names []string
	for k := range n {
		i := m.spread(k, n, 11)
		var out struct {
			Domains []struct {
				Sandbox bool `json:"sandbox"`
				Records []struct {
					Purpose, Value string
				} `json:"records"`
			} `json:"domains"`
		}
		if err := m.api.do("GET", "/v1/orgs/"+seeddb.OrgName(i)+"/domains", nil, 200, &out); err != nil {
			return nil, err
		}
		for _, d := range out.Domains {
			for _, r := range d.Records {
				if r.Purpose == "dkim" {
					names = append(names, r.Value)
				}
			}
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no DKIM record among %d organizations' domains", n)
	}
	return names, nil
}

// dns: sequential TXT queries for seeded DKIM names over one UDP socket.
func (m *measure) dns(ctx context.Context) error {
	names, err := m.dkimNames(min(200, m.o.orgs))
	if err != nil {
		return err
	}
	p, err := newDNSProbe(m.a.dns)
	if err != nil {
		return err
	}
	defer p.close()
	var lat []time.Duration
	bad := 0
	deadline := time.Now().Add(m.o.dnsTime)
	for k := 0; k < m.o.dnsN && time.Now().Before(deadline) && ctx.Err() == nil; k++ {
		name := names[(k*7919)%len(names)]
		t := time.Now()
		rcode, txt, _, err := p.txt(name)
		d := time.Since(t)
		if err != nil || rcode != 0 || len(txt) != 1 || !strings.HasPrefix(txt[0], "v=DKIM1; k=") {
			bad++
			if bad == 1 {
				m.logf("DNS %s: rcode %d %q %v", name, rcode, txt, err)
			}
			continue
		}
		lat = append(lat, d)
	}
	m.rep.DNS = summarize(lat)
	m.rep.DNSBad = bad
	m.logf("DNS TXT (%d names): %s, %d bad answers", len(names), m.rep.DNS, bad)
	if bad > 0 {
		return fmt.Errorf("%d DNS queries without the DKIM key", bad)
	}
	return nil
}

// loop calls f(k) for k = 0.. up to n times or until limit has passed,
// and returns the latencies of the calls.
func loop(ctx context.Context, n int, limit time.Duration, f func(k int) error) ([]time.Duration, error) {
	var lat []time.Duration
	deadline := time.Now().Add(limit)
	for k := 0; k < n && time.Now().Before(deadline); k++ {
		if err := ctx.Err(); err != nil {
			return lat, err
		}
		d, err := timed(func() error { return f(k) })
		if err != nil {
			return lat, err
		}
		lat = append(lat, d)
	}
	return lat, nil
}

// newDomain is the input of a domain added by the benchmark.
func newDomain(name string) map[string]any {
	return map[string]any{"name": name, "return_path": "mailing", "dkim_algorithm": "ed25519"}
}

// writes: the latency of one admin write of each kind, one at a time, on
// organizations spread over the dataset.
func (m *measure) writes(ctx context.Context) error {
	n := m.o.writes
	lat, err := loop(ctx, n, m.o.writesTime, func(k int) error {
		i := m.spread(k, n, 17)
		return m.api.do("POST", "/v1/orgs/"+seeddb.OrgName(i)+"/domains", newDomain(fmt.Sprintf("w%d.%s.bench.example", k, seeddb.OrgName(i))), 201, nil)
	})
	m.rep.AddDomain = summarize(lat)
	m.logf("add domain: %s", m.rep.AddDomain)
	if err != nil {
		return err
	}
	lat, err = loop(ctx, n, m.o.writesTime, func(k int) error {
		i := m.spread(k, n, 19)
		return m.api.do("PUT", "/v1/orgs/"+seeddb.OrgName(i)+"/domains/"+seeddb.DomainName(i, 2)+"/access",
			map[string]any{"restricted": true, "accounts": []string{seeddb.AccountName}}, 200, nil)
	})
	m.rep.SetAccess = summarize(lat)
	m.logf("set access: %s", m.rep.SetAccess)
	if err != nil {
		return err
	}
	lat, err = loop(ctx, n, m.o.writesTime, func(k int) error {
		i := m.spread(k, n, 23)
		var out struct{ Password string }
		if err := m.api.do("POST", "/v1/orgs/"+seeddb.OrgName(i)+"/smtp-accounts/"+seeddb.AccountName+"/password", nil, 200, &out); err != nil {
			return err
		}
		m.passwords[i] = out.Password
		return nil
	})
	m.rep.Rotate = summarize(lat)
	m.logf("rotate password: %s", m.rep.Rotate)
	return err
}

// bulkAdds: -adds Ed25519 domains added one by one through the API.
func (m *measure) bulkAdds(ctx context.Context) error {
	n := m.o.adds
	var prof chan error
	if m.o.pprof != "" && n > 0 {
		prof = make(chan error, 1)
		secs := int(min(m.o.addsTime, time.Minute) / time.Second)
		go func() { prof <- m.a.profile("profile", secs, filepath.Join(m.o.pprof, "a-cpu-adds.pprof")) }()
	}
	c0, cerr := m.a.cpuTime()
	var b0 time.Duration
	berr := errors.New("no second instance")
	if m.b != nil {
		b0, berr = m.b.cpuTime()
	}
	db0 := dbBackendsCPU(ctx, m.o.database)
	t := time.Now()
	lat, err := loop(ctx, n, m.o.addsTime, func(k int) error {
		i := (k * 7) % m.o.orgs
		return m.api.do("POST", "/v1/orgs/"+seeddb.OrgName(i)+"/domains", newDomain(fmt.Sprintf("b%d.%s.bench.example", k, seeddb.OrgName(i))), 201, nil)
	})
	if c1, err := m.a.cpuTime(); err == nil && cerr == nil && len(lat) > 0 {
		m.rep.AddsCPU = float64((c1 - c0).Microseconds()) / 1000 / float64(len(lat))
		m.rep.AddsDBCPU = float64((dbBackendsCPU(ctx, m.o.database) - db0).Microseconds()) / 1000 / float64(len(lat))
		if berr == nil {
			if b1, err := m.b.cpuTime(); err == nil {
				m.rep.AddsSecondCPU = float64((b1 - b0).Microseconds()) / 1000 / float64(len(lat))
			}
		}
	}
	m.rep.Adds = summarize(lat)
	m.rep.AddsWanted = n
	m.rep.AddsWall = sec(time.Since(t))
	m.logf("%d/%d one-by-one adds in %.1fs: %s", len(lat), n, m.rep.AddsWall, m.rep.Adds)
	if prof != nil {
		if perr := <-prof; perr != nil {
			m.rep.Errors = append(m.rep.Errors, "CPU profile: "+perr.Error())
		}
	}
	return err
}

// poll calls ok every 10 ms until it reports true or limit passes; it
// returns how long that took (limit and false when never).
func poll(ctx context.Context, limit time.Duration, ok func() (bool, error)) (time.Duration, bool, error) {
	t := time.Now()
	for time.Since(t) < limit {
		done, err := ok()
		if err != nil {
			return time.Since(t), false, err
		}
		if done {
			return time.Since(t), true, nil
		}
		select {
		case <-ctx.Done():
			return time.Since(t), false, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return limit, false, nil
}

// propagation: a write answered by A, then how long until B enforces it.
func (m *measure) propagation(ctx context.Context) error {
	if m.b == nil {
		return nil
	}
	const limit = 30 * time.Second
	var rot, dom, domReq, acc []time.Duration
	// Each write waits a random part of a second first: B polls the
	// state version every second, and a write made right after B's
	// previous poll was seen would otherwise always wait a whole period.
	rnd := rand.New(rand.NewPCG(5, 6))
	pause := func() { time.Sleep(time.Duration(rnd.Int64N(int64(time.Second)))) }
	for k := range m.o.propN {
		i := m.o.orgs - 1 - k // the last organizations: untouched so far
		org := seeddb.OrgName(i)
		// A password rotation: B accepts the new password, then refuses the old one.
		var out struct{ Password string }
		pause()
		if err := m.api.do("POST", "/v1/orgs/"+org+"/smtp-accounts/"+seeddb.AccountName+"/password", nil, 200, &out); err != nil {
			return err
		}
		d, ok, err := poll(ctx, limit, func() (bool, error) {
			code, _, err := auth(m.b.smtp, seeddb.Username(i), out.Password)
			return code == 235, err
		})
		if err != nil || !ok {
			return fmt.Errorf("instance B never accepted the rotated password of %s within %s: %v", seeddb.Username(i), limit, err)
		}
		if code, _, err := auth(m.b.smtp, seeddb.Username(i), m.password(i)); err != nil || code != 535 {
			return fmt.Errorf("instance B answered %d (%v) to the old password of %s, want 535", code, err, seeddb.Username(i))
		}
		m.passwords[i] = out.Password
		rot = append(rot, d)

		// A new domain: B's zone serves its DKIM key.
		var dj struct {
			Records []struct{ Purpose, Value string } `json:"records"`
		}
		name := fmt.Sprintf("p%d.%s.bench.example", k, org)
		pause()
		sent := time.Now()
		if err := m.api.do("POST", "/v1/orgs/"+org+"/domains", newDomain(name), 201, &dj); err != nil {
			return err
		}
		answered := time.Since(sent)
		target := ""
		for _, r := range dj.Records {
			if r.Purpose == "dkim" {
				target = r.Value
			}
		}
		p, err := newDNSProbe(m.b.dns)
		if err != nil {
			return err
		}
		d, ok, err = poll(ctx, limit, func() (bool, error) {
			rcode, txt, _, err := p.txt(target)
			return err == nil && rcode == 0 && len(txt) == 1, nil
		})
		p.close()
		if err != nil || !ok {
			return fmt.Errorf("instance B's zone never served %s within %s", target, limit)
		}
		dom = append(dom, d)
		domReq = append(domReq, answered+d)

		// An access restriction to no account: B refuses mail from the domain.
		from := "news@" + seeddb.DomainName(i, 3)
		if code, text, err := send(m.b.smtp, seeddb.Username(i), m.password(i), from); err != nil || code != 250 {
			return fmt.Errorf("instance B before the restriction: %d %s %v, want 250", code, text, err)
		}
		path := "/v1/orgs/" + org + "/domains/" + url.PathEscape(seeddb.DomainName(i, 3)) + "/access"
		pause()
		if err := m.api.do("PUT", path, map[string]any{"restricted": true, "accounts": []string{}}, 200, nil); err != nil {
			return err
		}
		d, ok, err = poll(ctx, limit, func() (bool, error) {
			code, text, err := send(m.b.smtp, seeddb.Username(i), m.password(i), from)
			if err == nil && code != 250 && code != 550 {
				return false, fmt.Errorf("instance B answered %d %s", code, text)
			}
			return code == 550 && strings.HasPrefix(text, "5.7.1"), err
		})
		if err != nil || !ok {
			return fmt.Errorf("instance B never refused mail from the restricted %s within %s: %v", from, limit, err)
		}
		acc = append(acc, d)
	}
	m.rep.PropRotate, m.rep.PropDomain, m.rep.PropAccess = summarize(rot), summarize(dom), summarize(acc)
	m.rep.PropDomainReq = summarize(domReq)
	m.logf("propagation to B: rotate %s; new domain in DNS %s; restriction %s", m.rep.PropRotate, m.rep.PropDomain, m.rep.PropAccess)
	return nil
}

// dbBackendsCPU is the CPU time the PostgreSQL backends connected to
// database have used so far (0 for SQLite, or when they cannot be read):
// the server runs on this machine, so /proc has them.
func dbBackendsCPU(ctx context.Context, database string) time.Duration {
	if !strings.HasPrefix(database, "postgres") {
		return 0
	}
	db, err := sql.Open("postgres", database)
	if err != nil {
		return 0
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		return 0
	}
	defer rows.Close()
	var total time.Duration
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		if c, err := parseCPU(string(b), clockTicks); err == nil {
			total += c
		}
	}
	return total
}
