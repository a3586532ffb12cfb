package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/sendergate/sendergate/internal/dnstest"
	"github.com/sendergate/sendergate/relay/relaytest"
)

// lookupTXT resolves a DKIM key record as a receiver would: the customer's
// CNAME, then the TXT that sendergate's zone serves at its target.
func lookupTXT(in *instance, cust *dnstest.Server) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		c := new(dns.Client)
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(name), dns.TypeCNAME)
		if r, _, err := c.Exchange(q, cust.Addr()); err == nil {
			for _, rr := range r.Answer {
				if cn, ok := rr.(*dns.CNAME); ok {
					name = cn.Target
				}
			}
		}
		q = new(dns.Msg)
		q.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
		r, _, err := c.Exchange(q, in.dns)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, rr := range r.Answer {
			if t, ok := rr.(*dns.TXT); ok {
				out = append(out, strings.Join(t.Txt, ""))
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no TXT at %s (rcode %s)", name, dns.RcodeToString[r.Rcode])
		}
		return out, nil
	}
}

// submit sends one message over STARTTLS with AUTH PLAIN and returns the
// server's error (nil for 250).
func submit(t *testing.T, addr, user, pass, from, to, body string) error {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		return err
	}
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: hello\r\n\r\n" + body + "\r\n"
	return c.SendMail(from, []string{to}, strings.NewReader(msg))
}

func smtpCode(err error) (int, string) {
	if se, ok := err.(*smtp.SMTPError); ok {
		return se.Code, fmt.Sprintf("%d.%d.%d %s", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
	}
	if err == nil {
		return 250, ""
	}
	return 0, err.Error()
}

func verifyDKIM(t *testing.T, data []byte, lookup func(string) ([]string, error), wantDomain string) {
	t.Helper()
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(data), &msgauth.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(vs) != 1 {
		t.Fatalf("DKIM verify: %v (%d signatures)", err, len(vs))
	}
	if vs[0].Err != nil || vs[0].Domain != wantDomain {
		t.Fatalf("DKIM: domain %q err %v, want a valid signature of %s", vs[0].Domain, vs[0].Err, wantDomain)
	}
	// An independent verifier: python3-dkim, fed the TXT records we fetched
	// over DNS.
	// Debian's python3-dkim belongs to /usr/bin/python3, not to a python3
	// that may come first on PATH.
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI needs /usr/bin/python3 with python3-dkim")
		}
		return
	}
	sel := regexp.MustCompile(`[; ]s=([a-z0-9]+)`).FindSubmatch(data)
	txt, err := lookup(string(sel[1]) + "._domainkey." + wantDomain)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.CreateTemp(t.TempDir(), "msg")
	f.Write(data)
	f.Close()
	script := `import sys, dkim
msg = open(sys.argv[1], 'rb').read()
txt = sys.argv[2].encode()
ok = dkim.verify(msg, dnsfunc=lambda name, timeout=5: txt)
sys.exit(0 if ok else 1)`
	out, err := exec.Command(python, "-c", script, f.Name(), txt[0]).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No module named") && os.Getenv("CI") != "true" {
			t.Logf("python3-dkim missing, independent verification skipped")
			return
		}
		t.Fatalf("python3-dkim rejects the signature: %v\n%s", err, out)
	}
}

func TestEndToEnd(t *testing.T) {
	up := relaytest.NewServer(t)
	cust := dnstest.NewServer(t)
	in := startDaemon(t, daemonOpts{upstream: up.Addr, customer: cust})
	key := in.adminKey(t)
	lookup := lookupTXT(in, cust)

	if code := in.call(t, key, "POST", "/v1/orgs", `{"name":"acme"}`, nil); code != 201 {
		t.Fatalf("create org: %d", code)
	}
	var acct map[string]string
	in.call(t, key, "POST", "/v1/orgs/acme/smtp-accounts", `{"name":"app"}`, &acct)
	user, pass := acct["username"], acct["password"]

	// 1. The sandbox domain sends at once, signed.
	if err := submit(t, in.smtp, user, pass, "anything@acme.sandbox.sg.localhost", "x@example.org", "sandbox"); err != nil {
		t.Fatalf("sandbox send: %v", err)
	}
	msgs := up.Messages()
	if len(msgs) != 1 {
		t.Fatalf("upstream got %d messages", len(msgs))
	}
	verifyDKIM(t, msgs[0].Data, lookup, "acme.sandbox.sg.localhost")

	// 2. A domain with every option: five CNAMEs (two DKIM selectors); publish them and verify.
	var dom struct {
		Status  string
		Records []struct{ Purpose, Host, Value, Status, Reason string }
	}
	body := `{"name":"newsletter.example.com","return_path":"mailing","tracking":"click","dkim_selector":"mkt1",
	          "dmarc":{"policy":"quarantine","rua":"dmarc@example.com","pct":50}}`
	if code := in.call(t, key, "POST", "/v1/orgs/acme/domains", body, &dom); code != 201 || len(dom.Records) != 5 {
		t.Fatalf("create domain: %d %+v", code, dom)
	}
	if err := submit(t, in.smtp, user, pass, "a@newsletter.example.com", "x@example.org", "too early"); err == nil {
		t.Fatal("a pending domain was accepted")
	} else if code, text := smtpCode(err); code != 550 || !strings.HasPrefix(text, "5.7.1") || !strings.Contains(text, "newsletter.example.com") {
		t.Errorf("pending domain: %d %s", code, text)
	}
	for _, r := range dom.Records {
		cust.PublishCNAME(r.Host, r.Value)
	}
	in.call(t, key, "POST", "/v1/orgs/acme/domains/newsletter.example.com/verify", "", &dom)
	if dom.Status != "verified" {
		t.Fatalf("after verify: %+v", dom)
	}
	for _, r := range dom.Records {
		if r.Status != "ok" {
			t.Errorf("record %s: %s %s", r.Host, r.Status, r.Reason)
		}
	}

	// 3. Mail from it: signed with mkt1, envelope sender on the bounce domain.
	up.ClearMessages()
	if err := submit(t, in.smtp, user, pass, "a@newsletter.example.com", "x@example.org", "verified"); err != nil {
		t.Fatalf("verified send: %v", err)
	}
	msgs = up.Messages()
	if len(msgs) != 1 || !regexp.MustCompile(`^bounce\+[^@]+@mailing\.newsletter\.example\.com$`).MatchString(msgs[0].From) {
		t.Fatalf("upstream envelope: %+v", msgs)
	}
	verifyDKIM(t, msgs[0].Data, lookup, "newsletter.example.com")

	// 4. Unknown domain: refused with a text naming it.
	err := submit(t, in.smtp, user, pass, "a@unverified.example", "x@example.org", "no")
	if code, text := smtpCode(err); code != 550 || !strings.HasPrefix(text, "5.7.1") || !strings.Contains(text, "unverified.example") {
		t.Errorf("unknown domain: %d %s", code, text)
	}

	// 5. Upstream down: 451 4.4.1; back up: 250 without restarting sendergate.
	up.Close()
	err = submit(t, in.smtp, user, pass, "a@newsletter.example.com", "x@example.org", "down")
	if code, text := smtpCode(err); code != 451 || !strings.HasPrefix(text, "4.4.1") {
		t.Errorf("upstream down: %d %s", code, text)
	}
	up.Restart()
	if err := submit(t, in.smtp, user, pass, "a@newsletter.example.com", "x@example.org", "up again"); err != nil {
		t.Errorf("after upstream restart: %v", err)
	}

	// 6. A confirmed address: the link from the captured mail confirms it.
	up.ClearMessages()
	var addr map[string]string
	if code := in.call(t, key, "POST", "/v1/orgs/acme/addresses", `{"email":"contact@newsletter.example.com"}`, &addr); code != 202 || addr["status"] != "pending" {
		t.Fatalf("add address: %d %v", code, addr)
	}
	msgs = up.Messages()
	if len(msgs) != 1 {
		t.Fatalf("confirmation mail: %d messages", len(msgs))
	}
	verifyDKIM(t, msgs[0].Data, lookup, "sg.localhost")
	link := regexp.MustCompile(`http://[^\s"<>]+/confirm\?token=[A-Za-z0-9_-]+`).Find(msgs[0].Data)
	if link == nil {
		t.Fatalf("no link in:\n%s", msgs[0].Data)
	}
	if code := confirmLink(t, string(link)); code != 200 {
		t.Fatalf("open the link and press Confirm: %d", code)
	}
	var list struct{ Addresses []map[string]string }
	in.call(t, key, "GET", "/v1/orgs/acme/addresses", "", &list)
	if len(list.Addresses) != 1 || list.Addresses[0]["status"] != "confirmed" {
		t.Errorf("addresses = %v", list.Addresses)
	}

	// 7. Removing a record: the background checks (every 10s here) take
	// the domain to failing.
	if testing.Short() {
		return
	}
	cust.Remove(dom.Records[0].Host)
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		in.call(t, key, "GET", "/v1/orgs/acme/domains/newsletter.example.com", "", &dom)
		if dom.Status == "failing" {
			break
		}
		time.Sleep(time.Second)
	}
	if dom.Status != "failing" {
		t.Errorf("after removing the DKIM CNAME: status %s, want failing", dom.Status)
	}
}

// addVerifiedDomain adds name with default options, publishes its records
// at the customer DNS and verifies it.
func addVerifiedDomain(t *testing.T, in *instance, key string, cust *dnstest.Server, org, name string) []struct{ Host, Value string } {
	t.Helper()
	var dom struct {
		Status  string
		Records []struct{ Host, Value string }
	}
	if code := in.call(t, key, "POST", "/v1/orgs/"+org+"/domains", `{"name":"`+name+`"}`, &dom); code != 201 {
		t.Fatalf("add %s: %d", name, code)
	}
	for _, r := range dom.Records {
		cust.PublishCNAME(r.Host, r.Value)
	}
	in.call(t, key, "POST", "/v1/orgs/"+org+"/domains/"+name+"/verify", "", &dom)
	if dom.Status != "verified" {
		t.Fatalf("%s after verify: %s", name, dom.Status)
	}
	return dom.Records
}

// TestLifecycleThroughBinary removes a published record and watches the
// background checks take the domain to failing, then revoked after grace,
// and back to verified when the record returns. With checks every 10s, the
// second miss (failing) comes 10-15s after the first; grace 25s leaves a
// failing window of at least 10s before revocation.
func TestLifecycleThroughBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about a minute of background checks")
	}
	t.Parallel()
	up := relaytest.NewServer(t)
	cust := dnstest.NewServer(t)
	in := startDaemon(t, daemonOpts{upstream: up.Addr, customer: cust, grace: "25s"})
	key := in.adminKey(t)
	in.call(t, key, "POST", "/v1/orgs", `{"name":"life"}`, nil)
	var acct map[string]string
	in.call(t, key, "POST", "/v1/orgs/life/smtp-accounts", `{"name":"app"}`, &acct)
	recs := addVerifiedDomain(t, in, key, cust, "life", "life.example")

	waitStatus := func(want string, within time.Duration) {
		t.Helper()
		var dom struct{ Status string }
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			in.call(t, key, "GET", "/v1/orgs/life/domains/life.example", "", &dom)
			if dom.Status == want {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Fatalf("status %s after %s, want %s", dom.Status, within, want)
	}
	cust.Remove(recs[0].Host)
	waitStatus("failing", 40*time.Second)
	if err := submit(t, in.smtp, acct["username"], acct["password"], "a@life.example", "x@example.org", "failing"); err != nil {
		t.Errorf("a failing domain must still send: %v", err)
	}
	waitStatus("revoked", 45*time.Second)
	err := submit(t, in.smtp, acct["username"], acct["password"], "a@life.example", "x@example.org", "revoked")
	if code, text := smtpCode(err); code != 550 || !strings.Contains(text, "life.example") {
		t.Errorf("revoked domain: %d %s", code, text)
	}
	cust.PublishCNAME(recs[0].Host, recs[0].Value)
	waitStatus("verified", 30*time.Second)

	var evs struct{ Events []struct{ Kind string } }
	in.call(t, key, "GET", "/v1/orgs/life/domains/life.example/events", "", &evs)
	var kinds []string
	for _, e := range evs.Events {
		kinds = append(kinds, e.Kind)
	}
	got := strings.Join(kinds, ",")
	for _, want := range []string{"domain.added", "domain.checked", "domain.verified", "domain.failing", "domain.revoked"} {
		if !strings.Contains(got, want) {
			t.Errorf("events %s lack %s", got, want)
		}
	}
	if !strings.HasSuffix(got, "domain.verified") {
		t.Errorf("last event of %s is not domain.verified", got)
	}
}

// TestSandboxLimitStrictModeAndRestart: the sandbox limit holds across two
// concurrent connections and across a restart; strict mode refuses an
// unconfirmed mailbox and accepts it once confirmed.
func TestSandboxLimitStrictModeAndRestart(t *testing.T) {
	t.Parallel()
	up := relaytest.NewServer(t)
	cust := dnstest.NewServer(t)
	opts := daemonOpts{upstream: up.Addr, customer: cust, strict: true, extra: "[sandbox]\ndaily_limit = 3\n"}
	in := startDaemon(t, opts)
	key := in.adminKey(t)
	in.call(t, key, "POST", "/v1/orgs", `{"name":"acme"}`, nil)
	var acct map[string]string
	in.call(t, key, "POST", "/v1/orgs/acme/smtp-accounts", `{"name":"app"}`, &acct)
	user, pass := acct["username"], acct["password"]

	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for c := 0; c < 2; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := smtp.DialStartTLS(in.smtp, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Error(err)
				return
			}
			defer cl.Close()
			if err := cl.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
				t.Error(err)
				return
			}
			for i := 0; i < 3; i++ {
				err := cl.SendMail("s@acme.sandbox.sg.localhost", []string{"x@example.org"},
					strings.NewReader("From: s@acme.sandbox.sg.localhost\r\nSubject: n\r\n\r\nhi\r\n"))
				code, text := smtpCode(err)
				mu.Lock()
				codes[fmt.Sprintf("%d %s", code, text)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if codes["250 "] != 3 || codes["451 4.7.1 sandbox daily limit reached"] != 3 {
		t.Errorf("6 sandbox messages over 2 connections with limit 3: %v", codes)
	}

	addVerifiedDomain(t, in, key, cust, "acme", "strict.example")
	err := submit(t, in.smtp, user, pass, "contact@strict.example", "x@example.org", "strict")
	if code, text := smtpCode(err); code != 550 || !strings.HasPrefix(text, "5.7.1") || !strings.Contains(text, "confirmed") {
		t.Errorf("unconfirmed mailbox in strict mode: %d %s", code, text)
	}
	up.ClearMessages()
	if code := in.call(t, key, "POST", "/v1/orgs/acme/addresses", `{"email":"contact@strict.example"}`, nil); code != 202 {
		t.Fatalf("add address: %d", code)
	}
	msgs := up.Messages()
	if len(msgs) != 1 {
		t.Fatalf("confirmation mail: %d", len(msgs))
	}
	link := regexp.MustCompile(`http://[^\s"<>]+/confirm\?token=[A-Za-z0-9_-]+`).Find(msgs[0].Data)
	if code := confirmLink(t, string(link)); code != 200 {
		t.Fatalf("confirm: %d", code)
	}
	if code, err := httpGet(string(link)); err != nil || code != 409 {
		t.Errorf("second use of the link: %d %v, want 409", code, err)
	}
	if err := submit(t, in.smtp, user, pass, "contact@strict.example", "x@example.org", "strict"); err != nil {
		t.Errorf("confirmed mailbox in strict mode: %v", err)
	}

	// The count is stored: after a restart the limit still holds today.
	in.stop()
	opts.dataDir = in.dir
	in2 := startDaemon(t, opts)
	err = submit(t, in2.smtp, user, pass, "s@acme.sandbox.sg.localhost", "x@example.org", "after restart")
	if code, text := smtpCode(err); code != 451 || text != "4.7.1 sandbox daily limit reached" {
		t.Errorf("after restart: %d %s", code, text)
	}
}
