package main

import (
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/relay/relaytest"
	"github.com/sendergate/sendergate/store/storetest"
)

const sandboxSender = "s@acme.sandbox.sg.localhost"

// loopResult is what a loop of single-recipient messages got.
type loopResult struct {
	accepted int
	replies  map[string]int // refusals, by "CODE X.Y.Z text" with the text cut at "; it frees up"
}

// sendLoop sends n single-recipient messages on one authenticated
// connection, as a client holding a leaked password would: each refusal
// is noted and the next message tried at once.
func sendLoop(t *testing.T, addr, user, pass string, n int) loopResult {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	res := loopResult{replies: map[string]int{}}
	for i := range n {
		to := fmt.Sprintf("r%d@example.org", i)
		err := c.SendMail(sandboxSender, []string{to},
			strings.NewReader("From: "+sandboxSender+"\r\nTo: "+to+"\r\nSubject: n\r\n\r\nhi\r\n"))
		if err == nil {
			res.accepted++
			continue
		}
		code, text := smtpCode(err)
		if code == 0 {
			t.Fatalf("message %d: %v", i, err)
		}
		text, _, _ = strings.Cut(text, "; it frees up")
		res.replies[fmt.Sprintf("%d %s", code, text)]++
		if err := c.Reset(); err != nil {
			t.Fatalf("RSET after a refusal: %v", err)
		}
	}
	return res
}

// limitUsage is the part of GET /v1/orgs/{org}/usage the tests read.
type limitUsage struct {
	Scopes []struct {
		Scope, Name  string
		Windows      map[string]struct{ Count, Limit int64 }
		RefusedToday int64 `json:"refused_today"`
	}
	Events []struct{ Kind, Detail string }
}

// TestSendingLimitThroughBinary is acceptance 1 and 2 of issue 16: with
// limits.account_per_hour = 100, a loop of 1,000 single-recipient
// messages with one account (a leaked password) delivers 100; every
// refusal is a 451 4.7.0 naming the account, the window and when it
// frees up; every message accepted reached the upstream. The usage route
// and the metrics show the counts and the refusals; a restart keeps the
// count. The admin-only rule of organization limits and the ceiling on
// account limits are enforced on the way.
func TestSendingLimitThroughBinary(t *testing.T) {
	t.Parallel()
	up := relaytest.NewServer(t)
	opts := daemonOpts{upstream: up.Addr, extra: "[limits]\naccount_per_hour = 100\n[sandbox]\ndaily_limit = 5000\n"}
	in := startDaemon(t, opts)
	key := in.adminKey(t)
	in.call(t, key, "POST", "/v1/orgs", `{"name":"acme"}`, nil)
	var acct map[string]string
	in.call(t, key, "POST", "/v1/orgs/acme/smtp-accounts", `{"name":"app"}`, &acct)
	user, pass := acct["username"], acct["password"]

	hour := time.Now().UTC().Truncate(time.Hour)
	res := sendLoop(t, in.smtp, user, pass, 1000)
	sameHour := time.Now().UTC().Truncate(time.Hour).Equal(hour)
	const refusal = "451 4.7.0 sending limit reached for account app@acme: 100 recipients per hour"
	if sameHour && (res.accepted != 100 || res.replies[refusal] != 900 || len(res.replies) != 1) {
		t.Errorf("1,000 messages at 100 per hour: %d accepted, refusals %v; want 100 and 900 × %q", res.accepted, res.replies, refusal)
	}
	if !sameHour && (res.accepted > 200 || res.replies[refusal]+res.accepted != 1000) {
		t.Errorf("1,000 messages over two hours at 100 per hour: %d accepted, refusals %v", res.accepted, res.replies)
	}
	if n := len(up.Messages()); n != res.accepted {
		t.Errorf("upstream has %d messages, %d were accepted", n, res.accepted)
	}

	var u limitUsage
	if code := in.call(t, key, "GET", "/v1/orgs/acme/usage", "", &u); code != 200 || len(u.Scopes) != 2 {
		t.Fatalf("usage: %d %+v", code, u)
	}
	if app := u.Scopes[1]; sameHour && (app.Name != "app" || app.Windows["hour"].Count != 100 || app.Windows["hour"].Limit != 100 ||
		app.Windows["day"].Count != 100 || app.RefusedToday != 900) {
		t.Errorf("usage of app: %+v, want 100 of 100 this hour and 900 refused today", app)
	}
	if org := u.Scopes[0]; org.Scope != "organization" || org.Windows["day"].Count != int64(res.accepted) || org.Windows["day"].Limit != 0 {
		t.Errorf("usage of acme: %+v, want the %d recipients, no limit", org, res.accepted)
	}
	metrics := in.metrics(t)
	for series, want := range map[string]int{
		`sendergate_limits_recipients_total{outcome="admitted",scope="account"}`:     res.accepted,
		`sendergate_limits_recipients_total{outcome="refused",scope="account"}`:      1000 - res.accepted,
		`sendergate_limits_recipients_total{outcome="refused",scope="organization"}`: 0,
	} {
		if got := metricValue(metrics, series); got != fmt.Sprint(want) {
			t.Errorf("%s = %q, want %d", series, got, want)
		}
	}

	// Organization limits: the admin key only. Account limits: at or
	// below the organization's, set by the organization's own key.
	var k struct{ Key string }
	in.call(t, key, "POST", "/v1/orgs/acme/keys", "", &k)
	var e struct{ Error struct{ Code, Field string } }
	if code := in.call(t, k.Key, "PUT", "/v1/orgs/acme/limits", `{"per_hour": 100000}`, &e); code != 403 || e.Error.Code != "forbidden" {
		t.Errorf("organization key raising its organization's limits: %d %+v, want 403", code, e)
	}
	if code := in.call(t, key, "PUT", "/v1/orgs/acme/limits", `{"per_hour": 500}`, nil); code != 200 {
		t.Errorf("admin key setting the organization's limits: %d", code)
	}
	if code := in.call(t, k.Key, "PUT", "/v1/orgs/acme/smtp-accounts/app/limits", `{"per_hour": 600}`, &e); code != 422 || e.Error.Field != "per_hour" {
		t.Errorf("account above its organization: %d %+v, want 422 naming per_hour", code, e)
	}
	if code := in.call(t, k.Key, "PUT", "/v1/orgs/acme/smtp-accounts/app/limits", `{"per_hour": 120}`, nil); code != 200 {
		t.Errorf("organization key setting an account's limits: %d", code)
	}
	if r := sendLoop(t, in.smtp, user, pass, 30); sameHour && r.accepted != 20 {
		t.Errorf("raised to 120 per hour: %d more accepted, want 20 (%v)", r.accepted, r.replies)
	}

	// The count is in the database: a restart does not reset it.
	in.stop()
	opts.dataDir = in.dir
	in2 := startDaemon(t, opts)
	r := sendLoop(t, in2.smtp, user, pass, 3)
	if time.Now().UTC().Truncate(time.Hour).Equal(hour) && (r.accepted != 0 || r.replies["451 4.7.0 sending limit reached for account app@acme: 120 recipients per hour"] != 3) {
		t.Errorf("after a restart: %d accepted, refusals %v; want the hour's count kept", r.accepted, r.replies)
	}
	var u2 limitUsage
	in2.call(t, key, "GET", "/v1/orgs/acme/usage", "", &u2)
	kinds := map[string]int{}
	for _, ev := range u2.Events {
		kinds[ev.Kind]++
		if ev.Kind == "limit.reached" && !strings.HasPrefix(ev.Detail, "account app@acme reached its limit of 100 recipients per hour") {
			t.Errorf("limit.reached %q, want app's hour at the limit it hit (100)", ev.Detail)
		}
	}
	if sameHour && (kinds["limit.reached"] != 1 || kinds["limits.changed"] != 2) {
		t.Errorf("usage events after the restart: %+v, want one limit.reached (one per window) and two limits.changed", u2.Events)
	}
}

// TestSendingLimitTwoInstances runs two daemons on one PostgreSQL, two
// clients on each sending as fast as they can with one account limited to
// 300 recipients per hour: together they deliver at most 300 (the bound
// is 0 over the limit), every one of them reached the upstream, and both
// instances delivered some.
func TestSendingLimitTwoInstances(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	up := relaytest.NewServer(t)
	opts := daemonOpts{upstream: up.Addr, env: []string{"SENDERGATE_DATABASE=" + dsn},
		extra: "[limits]\naccount_per_hour = 300\n[sandbox]\ndaily_limit = 5000\n"}
	a := startDaemon(t, opts)
	key := a.adminKey(t)
	a.call(t, key, "POST", "/v1/orgs", `{"name":"acme"}`, nil)
	var acct map[string]string
	a.call(t, key, "POST", "/v1/orgs/acme/smtp-accounts", `{"name":"app"}`, &acct)
	b := startDaemon(t, opts) // loads the account at start
	if err := submit(t, b.smtp, acct["username"], acct["password"], sandboxSender, "x@example.org", "warm-up"); err != nil {
		t.Fatalf("warm-up through the second instance: %v", err)
	}

	hour := time.Now().UTC().Truncate(time.Hour)
	var mu sync.Mutex
	per := map[string]int{}
	var wg sync.WaitGroup
	for _, in := range []*instance{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := sendLoop(t, in.smtp, acct["username"], acct["password"], 250)
			mu.Lock()
			per[in.smtp] += r.accepted
			mu.Unlock()
			for reply := range r.replies {
				if !strings.HasPrefix(reply, "451 4.7.0 sending limit reached for account app@acme: 300 recipients per hour") {
					t.Errorf("refusal %q", reply)
				}
			}
		}()
	}
	wg.Wait()
	total := 1 + per[a.smtp] + per[b.smtp] // the warm-up message counts too
	t.Logf("accepted: %d by one instance, %d by the other, %d with the warm-up (limit 300)", per[a.smtp], per[b.smtp], total)
	if time.Now().UTC().Truncate(time.Hour).Equal(hour) && total > 300 {
		t.Errorf("two instances delivered %d recipients in the hour, over the limit of 300", total)
	}
	if total < 290 {
		t.Errorf("only %d of the 300 delivered with 1,000 tried: budget held back", total)
	}
	if per[a.smtp] == 0 || per[b.smtp] == 0 {
		t.Errorf("one instance delivered nothing: %v", per)
	}
	if n := len(up.Messages()); n != total {
		t.Errorf("upstream has %d messages, %d were accepted", n, total)
	}
}
