package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/internal/dnstest"
	"github.com/sendergate/sendergate/internal/tcpfwd"
	"github.com/sendergate/sendergate/relay/relaytest"
	"github.com/sendergate/sendergate/store/storetest"
)

// answer is one HTTP answer of the daemon, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (in *instance) request(t *testing.T, key, method, path, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+in.admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// health is /healthz's JSON.
type health struct{ Status, Database, Policy, Error string }

func (in *instance) health(t *testing.T) (int, health) {
	t.Helper()
	a := in.request(t, "", "GET", "/healthz", "")
	var h health
	if err := json.Unmarshal(a.body, &h); err != nil {
		t.Fatalf("/healthz: %v: %s", err, a.body)
	}
	return a.status, h
}

// TestDatabaseDownThroughBinary runs the daemon on a real PostgreSQL
// behind a forwarder and cuts it: the admin API answers 503 "unavailable"
// with Retry-After for an organization key and the admin key (never 401),
// /healthz says the database is down, and SMTP goes on deciding from the
// last policy snapshot: verified domains send (250), whether or not they
// sent before the cut, an unknown one is
// refused (550 5.7.1), the sandbox domain, whose daily count lives in the
// database, is deferred (451). Once the forwarder is back, everything
// works again without a restart.
func TestDatabaseDownThroughBinary(t *testing.T) {
	t.Parallel()
	fwd, dsn := tcpfwd.Target(t, storetest.PostgresDSN(t))
	up := relaytest.NewServer(t)
	cust := dnstest.NewServer(t)
	in := startDaemon(t, daemonOpts{upstream: up.Addr, customer: cust, env: []string{"SENDERGATE_DATABASE=" + dsn}})
	if !strings.Contains(in.log.String(), "driver=postgres") {
		t.Fatalf("the daemon is not on PostgreSQL:\n%s", in.log.String())
	}
	admin := in.adminKey(t)
	if code := in.call(t, admin, "POST", "/v1/orgs", `{"name":"acme"}`, nil); code != 201 {
		t.Fatalf("create org: %d", code)
	}
	var k struct{ Key string }
	in.call(t, admin, "POST", "/v1/orgs/acme/keys", "", &k)
	var acct map[string]string
	in.call(t, k.Key, "POST", "/v1/orgs/acme/smtp-accounts", `{"name":"app"}`, &acct)
	user, pass := acct["username"], acct["password"]
	// warm.example sends before the cut, down.example only after it: both
	// must send from what the daemon loaded while the database was up.
	addVerifiedDomain(t, in, k.Key, cust, "acme", "warm.example")
	addVerifiedDomain(t, in, k.Key, cust, "acme", "down.example")
	const sandboxFrom = "s@acme.sandbox.sg.localhost"
	for _, from := range []string{sandboxFrom, "a@warm.example"} {
		if err := submit(t, in.smtp, user, pass, from, "x@example.org", "before"); err != nil {
			t.Fatalf("%s with the database up: %v", from, err)
		}
	}

	fwd.Cut()
	for _, rq := range []struct{ key, method, path, body string }{
		{k.Key, "GET", "/v1/orgs/acme", ""},
		{k.Key, "GET", "/v1/orgs/acme/domains", ""},
		{k.Key, "POST", "/v1/orgs/acme/smtp-accounts", `{"name":"other"}`},
		{admin, "GET", "/v1/orgs", ""},
		{admin, "POST", "/v1/orgs/acme/keys", ""},
		{"", "POST", "/v1/confirm", `{"token":"` + strings.Repeat("a", 43) + `"}`},
	} {
		a := in.request(t, rq.key, rq.method, rq.path, rq.body)
		var body struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(a.body, &body)
		retry, err := strconv.Atoi(a.header.Get("Retry-After"))
		if a.status != http.StatusServiceUnavailable || body.Error.Code != "unavailable" || body.Error.Message == "" || err != nil || retry < 1 {
			t.Errorf("%s %s with the database down: %d Retry-After %q %s", rq.method, rq.path, a.status, a.header.Get("Retry-After"), a.body)
		}
	}
	if code, h := in.health(t); code != http.StatusServiceUnavailable || h.Status != "degraded" || h.Database != "down" || h.Policy != "loaded" {
		t.Errorf("/healthz with the database down: %d %+v", code, h)
	}

	up.ClearMessages()
	for _, from := range []string{"a@warm.example", "a@down.example"} {
		if err := submit(t, in.smtp, user, pass, from, "x@example.org", "from the snapshot"); err != nil {
			t.Errorf("%s (verified) with the database down: %v; want 250 from the snapshot (its DKIM key included)", from, err)
		}
	}
	if n := len(up.Messages()); n != 2 {
		t.Errorf("upstream got %d messages, want 2", n)
	}
	err := submit(t, in.smtp, user, pass, "a@elsewhere.example", "x@example.org", "refused")
	if code, text := smtpCode(err); code != 550 || !strings.HasPrefix(text, "5.7.1") || !strings.Contains(text, "elsewhere.example") {
		t.Errorf("unknown domain with the database down: %d %s", code, text)
	}
	err = submit(t, in.smtp, user, pass, sandboxFrom, "x@example.org", "deferred")
	if code, text := smtpCode(err); code != 451 {
		t.Errorf("sandbox with the database down: %d %s, want 451 (its count is in the database: fail closed)", code, text)
	}

	fwd.Restore()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, h := in.health(t)
		if code == http.StatusOK && h.Status == "ok" && h.Database == "up" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz 30s after the database came back: %d %+v", code, h)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code := in.call(t, k.Key, "GET", "/v1/orgs/acme", "", nil); code != 200 {
		t.Errorf("org key after the database came back: %d", code)
	}
	if code := in.call(t, admin, "POST", "/v1/orgs/acme/smtp-accounts", `{"name":"later"}`, nil); code != 201 {
		t.Errorf("a write after the database came back: %d", code)
	}
	if err := submit(t, in.smtp, user, pass, sandboxFrom, "x@example.org", "after"); err != nil {
		t.Errorf("sandbox after the database came back: %v", err)
	}
	if strings.Contains(in.log.String(), admin) || strings.Contains(in.log.String(), k.Key) || strings.Contains(in.log.String(), pass) {
		t.Error("a secret appears in the daemon log")
	}
}
