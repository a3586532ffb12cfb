package main

import (
	"fmt"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/sendergate/sendergate/internal/dnstest"
	"github.com/sendergate/sendergate/relay/relaytest"
)

// dsn is a minimal RFC 3464 report, as Postfix writes one, about rcpt.
func dsn(rcpt string) string {
	return "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n" +
		"To: whoever\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n" +
		"--b1\r\nContent-Type: message/delivery-status\r\n\r\n" +
		"Reporting-MTA: dns; mx.example.net\r\n\r\n" +
		"Final-Recipient: rfc822; " + rcpt + "\r\nOriginal-Recipient: rfc822;" + rcpt + "\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
		"Diagnostic-Code: smtp; 550 5.1.1 <" + rcpt + ">: Recipient address rejected: User unknown\r\n\r\n" +
		"--b1--\r\n"
}

// sendBounce delivers a report from the null sender to a bounce address.
func sendBounce(t *testing.T, addr, to, msg string) {
	t.Helper()
	c, err := smtp.Dial(addr) // plaintext: the receiver offers STARTTLS, senders may skip it
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail(""); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to); err != nil {
		t.Fatalf("RCPT %s: %v", to, err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA to %s: %v", to, err)
	}
}

// TestBounceLoopThroughBinary: a message to a dead address comes back as
// a DSN to its bounce+ID@ return path; the binary links it to the
// message, lists the address as suppressed with the reporter's status and
// diagnostic, refuses the next message to it at RCPT with a text naming
// the DELETE that lifts it, and accepts it again once lifted. Forged
// reports (a wrong MAC, or the right id naming another recipient)
// suppress nobody.
func TestBounceLoopThroughBinary(t *testing.T) {
	up := relaytest.NewServer(t)
	cust := dnstest.NewServer(t)
	in := startDaemon(t, daemonOpts{upstream: up.Addr, customer: cust})
	key := in.adminKey(t)
	if code := in.call(t, key, "POST", "/v1/orgs", `{"name":"acme"}`, nil); code != 201 {
		t.Fatalf("create org: %d", code)
	}
	var acct map[string]string
	in.call(t, key, "POST", "/v1/orgs/acme/smtp-accounts", `{"name":"app"}`, &acct)
	user, pass := acct["username"], acct["password"]
	var dom struct {
		Status  string
		Records []struct{ Host, Value string }
	}
	if code := in.call(t, key, "POST", "/v1/orgs/acme/domains", `{"name":"example.com","return_path":"mailing"}`, &dom); code != 201 {
		t.Fatalf("add domain: %d", code)
	}
	for _, r := range dom.Records {
		cust.PublishCNAME(r.Host, r.Value)
	}
	if in.call(t, key, "POST", "/v1/orgs/acme/domains/example.com/verify", "", &dom); dom.Status != "verified" {
		t.Fatalf("verify: %+v", dom)
	}

	if err := submit(t, in.smtp, user, pass, "app@example.com", "dead@example.net", "one"); err != nil {
		t.Fatalf("first send: %v", err)
	}
	msgs := up.Messages()
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0].From, "bounce+") || !strings.HasSuffix(msgs[0].From, "@mailing.example.com") {
		t.Fatalf("upstream got %+v", msgs)
	}
	returnPath := msgs[0].From

	// Forgeries first: nothing may come of them.
	at := strings.IndexByte(returnPath, '@')
	local := []byte(returnPath[:at])
	if i := len("bounce+") + 12; local[i] == 'a' { // another id: a character of its MAC'd data changed
		local[i] = 'b'
	} else {
		local[i] = 'a'
	}
	for i := range 100 {
		forged := fmt.Sprintf("bounce+%s@mailing.example.com", strings.Repeat(string(rune('a'+i%26)), len(returnPath[7:at])))
		sendBounce(t, in.bounce, forged, dsn("dead@example.net"))
	}
	sendBounce(t, in.bounce, string(local)+returnPath[at:], dsn("dead@example.net"))
	sendBounce(t, in.bounce, returnPath, dsn("victim@example.net")) // the right id, another recipient
	time.Sleep(1500 * time.Millisecond)                             // past a sync of the list
	if code := in.call(t, key, "GET", "/v1/orgs/acme/suppressions", "", nil); code != 200 {
		t.Fatalf("list: %d", code)
	}
	var list struct{ Suppressions []map[string]any }
	in.call(t, key, "GET", "/v1/orgs/acme/suppressions", "", &list)
	if len(list.Suppressions) != 0 {
		t.Fatalf("forged bounces suppressed %+v", list.Suppressions)
	}
	if err := submit(t, in.smtp, user, pass, "app@example.com", "dead@example.net", "two"); err != nil {
		t.Fatalf("send after forged bounces: %v", err)
	}

	// The real bounce.
	sendBounce(t, in.bounce, returnPath, dsn("dead@example.net"))
	var s struct {
		Reason, Status, Diagnostic string
		MessageID                  string `json:"message_id"`
	}
	if code := in.call(t, key, "GET", "/v1/orgs/acme/suppressions/dead@example.net", "", &s); code != 200 ||
		s.Reason != "bounce" || s.Status != "5.1.1" || !strings.Contains(s.Diagnostic, "User unknown") || len(s.MessageID) != 16 {
		t.Fatalf("suppression: %d %+v", code, s)
	}
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = submit(t, in.smtp, user, pass, "app@example.com", "dead@example.net", "three"); err != nil {
			break
		}
	}
	code, text := smtpCode(err)
	lift := "DELETE http://" + in.admin + "/v1/orgs/acme/suppressions/dead@example.net"
	if code != 550 || !strings.HasPrefix(text, "5.1.1") || !strings.Contains(text, "hard bounce 5.1.1") || !strings.Contains(text, lift) {
		t.Fatalf("send to the suppressed address: %d %s; want 550 5.1.1 naming %q", code, text, lift)
	}
	if err := submit(t, in.smtp, user, pass, "app@example.com", "alive@example.net", "other"); err != nil {
		t.Fatalf("another recipient: %v", err)
	}

	if code := in.call(t, key, "DELETE", "/v1/orgs/acme/suppressions/dead@example.net", "", nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if err := submit(t, in.smtp, user, pass, "app@example.com", "dead@example.net", "four"); err != nil {
		t.Fatalf("send after the suppression was lifted: %v", err)
	}
}
