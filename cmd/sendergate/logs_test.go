package main

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestLogsAndReplies checks the log lines and replies an operator reads:
// the resolvers in use at start, one line for the zone's listener,
// organizations by name, an id on a transaction refused at MAIL, an
// outbox hand-off named as such, and the confirmation link's lifetime in
// words.
func TestLogsAndReplies(t *testing.T) {
	tr := startTrial(t)
	log := func() string { return tr.log.String() }

	if !regexp.MustCompile(`msg="customer records are verified through these DNS resolvers" resolvers=` + regexp.QuoteMeta(tr.demoDNS)).MatchString(log()) {
		t.Errorf("the startup log does not show the resolvers in use (%s)", tr.demoDNS)
	}
	if n := len(regexp.MustCompile(`(?m)^.*zone.*listening.*$`).FindAllString(log(), -1)); n != 1 {
		t.Errorf("%d lines say the zone server listens, want 1", n)
	}

	// MAIL before AUTH: 530, and its log line has an id like every other.
	c, err := smtp.DialStartTLS(tr.smtp, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Mail("a@example.net", nil)
	c.Close()
	if code, _ := smtpCode(err); code != 530 {
		t.Fatalf("MAIL before AUTH: %v", err)
	}
	waitLog(t, tr.instance, `msg=transaction conn=\S+ remote=\S+ id=[0-9a-f]+ account="" mail_from=a@example.net result=refused code=530`)

	tr.must(t, "orgs", "add", "acme")
	pass := strings.TrimSpace(tr.must(t, "accounts", "add", "-org", "acme", "-q", "app"))
	tr.must(t, "domains", "add", "-org", "acme", "example.net")
	tr.must(t, "domains", "verify", "-org", "acme", "example.net")
	waitLog(t, tr.instance, `msg="domain status changed" domain=example.net org=acme from=pending to=verified`)

	// Without relay.upstream, 250 says where the message went.
	if err := submit(t, tr.smtp, "app@acme", pass, "a@example.net", "x@example.org", "hi"); err != nil {
		t.Fatal(err)
	}
	waitLog(t, tr.instance, `reply="250 2\.0\.0 OK: accepted as [0-9a-f]+ into the outbox"`)
	if strings.Contains(log(), "by upstream") {
		t.Error("an outbox hand-off is logged as an upstream's")
	}

	// The confirmation email gives the link's lifetime in words.
	tr.must(t, "addresses", "add", "-org", "acme", "news@example.net")
	mail := waitOutbox(t, tr, "Confirm your sender address")
	if !strings.Contains(mail, "expires in 24 hours") || strings.Contains(mail, "24h0m0s") {
		t.Errorf("confirmation email:\n%s", mail)
	}
	token := regexp.MustCompile(`token=([A-Za-z0-9_-]+)`).FindStringSubmatch(mail)
	if token == nil {
		t.Fatalf("no link in the confirmation email:\n%s", mail)
	}
	if code := tr.call(t, "", "POST", "/v1/confirm", `{"token":"`+token[1]+`"}`, nil); code != 200 {
		t.Fatalf("confirm: %d", code)
	}
	waitLog(t, tr.instance, `msg="address confirmed" org=acme email=news@example.net`)
}

// waitLog waits until the daemon's log matches re.
func waitLog(t *testing.T, in *instance, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for !rx.MatchString(in.log.String()) {
		if time.Now().After(deadline) {
			t.Errorf("no log line matches %s", re)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOutbox returns the first outbox file that contains want.
func waitOutbox(t *testing.T, tr *trial, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(tr.dir, "data", "outbox", "*.eml"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), want) {
				return string(b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no outbox file contains %q", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
