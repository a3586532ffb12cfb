//go:build postfix

package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/bounce"
	"github.com/sendergate/sendergate/internal/dnstest"
	"github.com/sendergate/sendergate/internal/postfixtest"
	"github.com/sendergate/sendergate/relay/relaytest"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/webhooks"
)

// Issue #12 through the binary: sendergate relays to a private Postfix,
// Postfix delivers (or bounces) and sends what comes back for the
// bounce+ID@ return paths to sendergate's bounce listener.
const (
	shopDomain = "shop.example"
	shopRP     = "mailing.shop.example" // its return_path "mailing"
	deadAddr   = "dead@dead.example"
	deadReply  = "<" + deadAddr + ">: Recipient address rejected: User unknown"
	liveAddr   = "reader@live.example"
)

// bounceRig is a daemon, its customer's DNS and webhook receiver, and a
// Postfix as its relay.upstream and as the MX of its return-path domains.
type bounceRig struct {
	in         *instance
	key        string
	user, pass string
	hooks      *hookSink
	pf         *postfixtest.Instance
	internet   *relaytest.Server // Postfix's relayhost: every other domain
	deadMX     *relaytest.Server // dead.example: 550 5.1.1 for deadAddr
}

// startBounceRig starts the daemon with the organization acme, an
// account, shop.example verified with return path mailing, and a webhook
// for the three suppression events; then Postfix with transport_maps
// routing the return-path domains (mailing.shop.example and every
// T.bounce.sg.localhost) to bounce.listen and dead.example to deadMX.
func startBounceRig(t *testing.T) *bounceRig {
	t.Helper()
	postfixtest.NeedPostfix(t)
	pfPort := freePort(t)
	g := &bounceRig{internet: relaytest.NewServer(t), deadMX: relaytest.NewServer(t), hooks: newHookSink(t)}
	g.deadMX.SetRcptReply(deadAddr, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: deadReply})
	cust := dnstest.NewServer(t)
	g.in = startDaemon(t, daemonOpts{upstream: fmt.Sprintf("127.0.0.1:%d", pfPort), customer: cust,
		extra: "[webhooks]\nallow_private = true\n"})
	g.key, g.user, g.pass = setupOrg(t, g.in, cust, g.hooks)
	toBounce := "smtp:[127.0.0.1]:" + portOf(g.in.bounce)
	g.pf = postfixtest.Start(t, postfixtest.Options{
		Port:       pfPort,
		MyNetworks: []string{"127.0.0.1/32"}, // sendergate relays without AUTH
		Relayhost:  "[127.0.0.1]:" + portOf(g.internet.Addr),
		// An MX for the return-path domains accepts bounces from anyone.
		RelayDomains: []string{shopRP, "bounce.sg.localhost"},
		Transports: map[string]string{shopRP: toBounce, ".bounce.sg.localhost": toBounce,
			"dead.example": "smtp:[127.0.0.1]:" + portOf(g.deadMX.Addr)},
		// A delivery to bounce.listen that was deferred is retried soon.
		MainCF: []string{"minimal_backoff_time = 2s", "maximal_backoff_time = 4s", "queue_run_delay = 2s"},
	})
	return g
}

// setupOrg creates acme, its account, shop.example (return path mailing,
// verified against cust) and, when hooks is set, a webhook for the
// suppression events; it returns the admin key and the SMTP login.
func setupOrg(t *testing.T, in *instance, cust *dnstest.Server, hooks *hookSink) (key, user, pass string) {
	t.Helper()
	key = in.adminKey(t)
	if code := in.call(t, key, "POST", "/v1/orgs", `{"name":"acme"}`, nil); code != 201 {
		t.Fatalf("create org: %d", code)
	}
	var acct map[string]string
	if code := in.call(t, key, "POST", "/v1/orgs/acme/smtp-accounts", `{"name":"app"}`, &acct); code != 201 {
		t.Fatalf("create account: %d", code)
	}
	addVerified(t, in, key, cust, `{"name":"`+shopDomain+`","return_path":"mailing"}`)
	if hooks != nil {
		var wh struct{ ID, Secret string }
		body := `{"url":"` + hooks.srv.URL + `/hook","events":["message.bounced","message.complained","recipient.suppressed"]}`
		if code := in.call(t, key, "POST", "/v1/orgs/acme/webhooks", body, &wh); code != 201 || wh.Secret == "" {
			t.Fatalf("create webhook: %d %+v", code, wh)
		}
		hooks.setSecret(wh.Secret)
	}
	return key, acct["username"], acct["password"]
}

// addVerified adds a domain of acme (body is the POST's JSON), publishes
// its CNAMEs at cust and verifies it; it returns the CNAME values.
func addVerified(t *testing.T, in *instance, key string, cust *dnstest.Server, body string) []string {
	t.Helper()
	var dom struct {
		Name, Status string
		Records      []struct{ Host, Value string }
	}
	if code := in.call(t, key, "POST", "/v1/orgs/acme/domains", body, &dom); code != 201 {
		t.Fatalf("add domain %s: %d", body, code)
	}
	var values []string
	for _, r := range dom.Records {
		cust.PublishCNAME(r.Host, r.Value)
		values = append(values, r.Value)
	}
	in.call(t, key, "POST", "/v1/orgs/acme/domains/"+dom.Name+"/verify", "", &dom)
	if dom.Status != "verified" {
		t.Fatalf("%s after verify: %s", dom.Name, dom.Status)
	}
	return values
}

// hookSink is the customer's webhook endpoint. Every delivery's
// Sendergate-Signature must verify under the webhook's secret.
type hookSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	events []hookEvent
	bad    []string // deliveries that did not verify or decode
}

// hookEvent is a delivered webhook payload.
type hookEvent struct {
	Type string            `json:"type"`
	Org  string            `json:"org"`
	Data map[string]string `json:"data"`
}

func newHookSink(t *testing.T) *hookSink {
	h := &hookSink{}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(func() {
		h.srv.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, b := range h.bad {
			t.Errorf("webhook delivery: %s", b)
		}
	})
	return h
}

func (h *hookSink) setSecret(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secret = s
}

func (h *hookSink) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		err = webhooks.Verify(h.secret, r.Header.Get("Sendergate-Signature"), body, time.Now(), 5*time.Minute)
	}
	var ev hookEvent
	if err == nil {
		err = json.Unmarshal(body, &ev)
	}
	if err != nil {
		h.bad = append(h.bad, fmt.Sprintf("%v: %s", err, body))
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.events = append(h.events, ev)
}

// wait returns the first delivered event of type typ about email,
// waiting up to 15 s.
func (h *hookSink) wait(t *testing.T, typ, email string) hookEvent {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		h.mu.Lock()
		for _, ev := range h.events {
			if ev.Type == typ && ev.Data["email"] == email {
				h.mu.Unlock()
				return ev
			}
		}
		got := fmt.Sprint(h.events)
		h.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s webhook for %s after 15s; got %s", typ, email, got)
		}
	}
}

// suppression is an entry of the suppression list API.
type suppression struct {
	Email      string `json:"email"`
	Reason     string `json:"reason"`
	Status     string `json:"status"`
	Diagnostic string `json:"diagnostic"`
	MessageID  string `json:"message_id"`
	FirstSeen  string `json:"first_seen"`
	LastSeen   string `json:"last_seen"`
	Count      int    `json:"count"`
	ExpiresAt  string `json:"expires_at"`
}

// waitSuppressed polls GET /v1/orgs/acme/suppressions/{email} for up to
// 15 s until it answers 200.
func waitSuppressed(t *testing.T, in *instance, key, email string) suppression {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var s suppression
		code := in.call(t, key, "GET", "/v1/orgs/acme/suppressions/"+email, "", &s)
		if code == 200 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not on the suppression list after 15s (GET: %d)", email, code)
		}
	}
}

// listSuppressions returns the first page of GET /v1/orgs/acme/suppressions?query.
func listSuppressions(t *testing.T, in *instance, key, query string) []suppression {
	t.Helper()
	var page struct {
		Suppressions []suppression `json:"suppressions"`
	}
	if code := in.call(t, key, "GET", "/v1/orgs/acme/suppressions?"+query, "", &page); code != 200 {
		t.Fatalf("list suppressions ?%s: %d", query, code)
	}
	return page.Suppressions
}

// sendOne submits one message over STARTTLS with AUTH and returns the
// message id of the 250 reply, or the refusal.
func sendOne(t *testing.T, in *instance, user, pass, from, to, subject string) (string, error) {
	t.Helper()
	c, err := smtp.DialStartTLS(in.smtp, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial %s: %v", in.smtp, err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		t.Fatalf("auth: %v", err)
	}
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return "", err
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(w, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d@app.shop.example>\r\n\r\nHello.\r\n",
		from, to, subject, time.Now().Format(time.RFC1123Z), time.Now().UnixNano())
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	m := acceptedID.FindStringSubmatch(resp.StatusText)
	if m == nil {
		t.Fatalf("250 reply %q names no message id", resp.StatusText)
	}
	return m[1], nil
}

// TestPostfixBounceLoop: a message to a dead mailbox is accepted, Postfix
// gets 550 5.1.1 from the recipient's MX and sends its own DSN to the
// bounce+ID@ return path, which it routes to sendergate; the recipient is
// then suppressed (API, webhooks, 550 5.1.1 at RCPT naming the DELETE),
// and after that DELETE the next message is accepted and delivered.
func TestPostfixBounceLoop(t *testing.T) {
	g := startBounceRig(t)
	in, key := g.in, g.key
	id, err := sendOne(t, in, g.user, g.pass, "news@"+shopDomain, deadAddr, "to the dead")
	if err != nil {
		t.Fatalf("a first message to %s: %v", deadAddr, err)
	}

	s := waitSuppressed(t, in, key, deadAddr)
	// It was Postfix that bounced it and brought the DSN to bounce.listen.
	g.waitMaillog(t, `to=<`+regexp.QuoteMeta(deadAddr)+`>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:`+portOf(g.deadMX.Addr)+`, .*dsn=5\.1\.1, status=bounced`)
	g.waitMaillog(t, `to=<bounce\+[a-z2-7]+@`+regexp.QuoteMeta(shopRP)+`>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:`+portOf(in.bounce)+`, .*status=sent`)
	if s.Email != deadAddr || s.Reason != "bounce" || s.Status != "5.1.1" || s.MessageID != id || s.Count != 1 {
		t.Errorf("suppression %+v, want %s, bounce, 5.1.1, message %s, count 1", s, deadAddr, id)
	}
	// Postfix's DSN carries the MX's reply as Diagnostic-Code.
	if !strings.Contains(s.Diagnostic, "550 5.1.1 "+deadReply) {
		t.Errorf("diagnostic %q, want the MX's reply %q", s.Diagnostic, "550 5.1.1 "+deadReply)
	}
	if l := listSuppressions(t, in, key, "reason=bounce"); len(l) != 1 || l[0].Email != deadAddr {
		t.Errorf("suppressions?reason=bounce = %+v, want %s alone", l, deadAddr)
	}
	if l := listSuppressions(t, in, key, "reason=complaint"); len(l) != 0 {
		t.Errorf("suppressions?reason=complaint = %+v, want none", l)
	}

	bounced := g.hooks.wait(t, "message.bounced", deadAddr)
	if bounced.Org != "acme" || bounced.Data["status"] != "5.1.1" || bounced.Data["message_id"] != id {
		t.Errorf("message.bounced webhook %+v, want org acme, status 5.1.1, message %s", bounced, id)
	}
	if sup := g.hooks.wait(t, "recipient.suppressed", deadAddr); sup.Data["reason"] != "bounce" {
		t.Errorf("recipient.suppressed webhook %+v, want reason bounce", sup)
	}

	// The list reaches RCPT within about a second.
	var refusal string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, err := sendOne(t, in, g.user, g.pass, "news@"+shopDomain, deadAddr, "again")
		code, text := smtpCode(err)
		if code == 550 {
			refusal = text
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a suppressed recipient still gets %d %s after 5s", code, text)
		}
	}
	if !strings.HasPrefix(refusal, "5.1.1 ") || !strings.Contains(refusal, "suppression list") || !strings.Contains(refusal, "hard bounce 5.1.1") {
		t.Errorf("refusal %q, want 5.1.1 saying it is on the suppression list after a hard bounce", refusal)
	}
	m := regexp.MustCompile(`DELETE (http://\S+)`).FindStringSubmatch(refusal)
	if m == nil || !strings.HasSuffix(m[1], "/suppressions/"+deadAddr) {
		t.Fatalf("refusal %q does not name the DELETE that lifts it", refusal)
	}

	// The mailbox exists again; the DELETE named in the refusal lifts it.
	g.deadMX.SetRcptReply(deadAddr, nil)
	if code := deleteURL(t, key, m[1]); code/100 != 2 {
		t.Fatalf("DELETE %s: %d", m[1], code)
	}
	if code := in.call(t, key, "GET", "/v1/orgs/acme/suppressions/"+deadAddr, "", nil); code != 404 {
		t.Errorf("GET after DELETE: %d, want 404", code)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, err := sendOne(t, in, g.user, g.pass, "news@"+shopDomain, deadAddr, "lifted")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after DELETE the recipient still gets %v", err)
		}
	}
	waitReceived(t, g.deadMX, "lifted")
}

// waitMaillog waits up to 5 s for a line of Postfix's maillog matching
// pattern.
func (g *bounceRig) waitMaillog(t *testing.T, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	for deadline := time.Now().Add(5 * time.Second); !re.MatchString(g.pf.Maillog()); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Postfix logged no line matching %s", pattern)
		}
	}
}

// deleteURL sends DELETE to a full admin URL with the admin key.
func deleteURL(t *testing.T, key, u string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodDelete, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("DELETE %s: %v", u, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReceived returns the message with subject that s received, waiting
// up to 15 s (Postfix delivers from its queue).
func waitReceived(t *testing.T, s *relaytest.Server, subject string) relaytest.Received {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		for _, m := range s.Messages() {
			if strings.Contains(string(m.Data), "\r\nSubject: "+subject+"\r\n") {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message %q delivered after 15s (%d others)", subject, len(s.Messages()))
		}
	}
}

// TestPostfixComplaint: a mailbox provider's feedback loop sends an ARF
// report (RFC 5965) about a delivered message to its bounce+ID@ return
// path, through Postfix as the MX of that domain (from an address outside
// mynetworks); the recipient is suppressed as a complaint.
func TestPostfixComplaint(t *testing.T) {
	g := startBounceRig(t)
	in, key := g.in, g.key
	// The sandbox domain: its return path is T.bounce.sg.localhost.
	from := "news@acme.sandbox.sg.localhost"
	id, err := sendOne(t, in, g.user, g.pass, from, liveAddr, "a newsletter")
	if err != nil {
		t.Fatalf("send to %s: %v", liveAddr, err)
	}
	orig := waitReceived(t, g.internet, "a newsletter")
	rp := orig.From
	if !regexp.MustCompile(`^bounce\+[a-z2-7]+@[a-z2-7]+\.bounce\.sg\.localhost$`).MatchString(rp) {
		t.Fatalf("envelope sender %q, want bounce+ID@T.bounce.sg.localhost", rp)
	}
	head, _, _ := strings.Cut(string(orig.Data), "\r\n\r\n")

	c := dialFrom(t, "127.0.0.3", g.pf.SMTP) // not in mynetworks
	if err := c.Hello("fbl.isp.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("", []string{rp}, strings.NewReader(arfReport(rp, liveAddr, head))); err != nil {
		t.Fatalf("Postfix refused the feedback report to %s: %v", rp, err)
	}

	s := waitSuppressed(t, in, key, liveAddr)
	if s.Reason != "complaint" || s.MessageID != id {
		t.Errorf("suppression %+v, want reason complaint for message %s", s, id)
	}
	if l := listSuppressions(t, in, key, "reason=complaint"); len(l) != 1 || l[0].Email != liveAddr {
		t.Errorf("suppressions?reason=complaint = %+v, want %s alone", l, liveAddr)
	}
	if ev := g.hooks.wait(t, "message.complained", liveAddr); ev.Data["message_id"] != id {
		t.Errorf("message.complained webhook %+v, want message %s", ev, id)
	}
	if ev := g.hooks.wait(t, "recipient.suppressed", liveAddr); ev.Data["reason"] != "complaint" {
		t.Errorf("recipient.suppressed webhook %+v, want reason complaint", ev)
	}
}

// dialFrom opens an SMTP client to addr from the loopback address local.
func dialFrom(t *testing.T, local, addr string) *smtp.Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	c := smtp.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return c
}

// arfReport is an RFC 5965 abuse report about the message whose header
// is head, sent by rp's sender to rcpt.
func arfReport(rp, rcpt, head string) string {
	return "From: Feedback Loop <fbl@isp.example>\r\nTo: " + rp + "\r\nSubject: FW: a newsletter\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\nMessage-ID: <fbl-1@isp.example>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=feedback-report; boundary=\"arf\"\r\n\r\n" +
		"--arf\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThis is an email abuse report.\r\n" +
		"--arf\r\nContent-Type: message/feedback-report\r\n\r\n" +
		"Feedback-Type: abuse\r\nUser-Agent: isp-fbl/1.0\r\nVersion: 1\r\n" +
		"Original-Mail-From: <" + rp + ">\r\nOriginal-Rcpt-To: <" + rcpt + ">\r\n" +
		"Arrival-Date: " + time.Now().Format(time.RFC1123Z) + "\r\nSource-IP: 127.0.0.1\r\n" +
		"--arf\r\nContent-Type: message/rfc822-headers\r\n\r\n" + head + "\r\n" +
		"--arf--\r\n"
}

// TestPostfixForgedBounces: bounces whose id does not authenticate
// suppress nobody: 100 with wrong MACs (tampered, or made under another
// secret), the genuine id copied to another served return-path domain,
// one for an unknown domain (refused at RCPT), one expired, and the
// genuine id naming a recipient the message did not have. The genuine
// bounce, sent after them, is recorded, so the list has caught up when
// it is read. No Postfix: straight to bounce.listen.
func TestPostfixForgedBounces(t *testing.T) {
	up := relaytest.NewServer(t)
	cust := dnstest.NewServer(t)
	in := startDaemon(t, daemonOpts{upstream: up.Addr, customer: cust})
	key, user, pass := setupOrg(t, in, cust, nil)
	// A second served return path: other.example's T.bounce.sg.localhost.
	var otherRP string
	for _, v := range addVerified(t, in, key, cust, `{"name":"other.example"}`) {
		if l := strings.Split(v, "."); len(l) > 2 && l[2] == "dkim" { // SEL.T.dkim.ZONE
			otherRP = l[1] + ".bounce.sg.localhost"
		}
	}
	if otherRP == "" {
		t.Fatal("other.example has no DKIM record naming its token")
	}

	msgID, err := sendOne(t, in, user, pass, "news@"+shopDomain, liveAddr, "genuine")
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	realID, rpDomain, ok := bounce.ParseAddress(up.Messages()[0].From)
	if !ok || rpDomain != shopRP {
		t.Fatalf("envelope sender %q, want bounce+ID@%s", up.Messages()[0].From, shopRP)
	}

	b := dialBounce(t, in.bounce)
	var victims []string
	for i := range 100 {
		victim := fmt.Sprintf("victim%d@live.example", i)
		victims = append(victims, victim)
		b.send(t, "bounce+"+forgedID(t, i, realID, msgID)+"@"+shopRP, dsn(victim), nil)
	}
	victims = append(victims, "copied@live.example", "expired@live.example", "nodomain@live.example", "other@live.example")
	b.send(t, "bounce+"+realID+"@"+otherRP, dsn("copied@live.example"), nil)
	// An expired id needs the daemon's secret: read it as another
	// instance would, from the shared database.
	old, err := bounce.NewCodec(bounceSecret(t, in)).EncodeFor(msgID, shopRP, "expired@live.example", time.Now().Add(-800*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	b.send(t, "bounce+"+old+"@"+shopRP, dsn("expired@live.example"), nil)
	b.send(t, "bounce+"+realID+"@mailing.unknown.example", dsn("nodomain@live.example"),
		&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}})
	b.send(t, "bounce+"+realID+"@"+shopRP, dsn("other@live.example"), nil)
	// The genuine one, last.
	b.send(t, "bounce+"+realID+"@"+shopRP, dsn(liveAddr), nil)

	waitSuppressed(t, in, key, liveAddr)
	if l := listSuppressions(t, in, key, ""); len(l) != 1 {
		t.Errorf("suppression list %+v, want the genuine bounce's recipient alone", l)
	}
	body := in.metrics(t)
	for series, want := range map[string]string{
		`sendergate_bounce_dropped_total{reason="bad_mac"}`:            "101",
		`sendergate_bounce_dropped_total{reason="expired"}`:            "1",
		`sendergate_bounce_dropped_total{reason="recipient_mismatch"}`: "1",
	} {
		if got := metricValue(body, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}

	// At RCPT: the genuine bounce's recipient is refused once the list
	// has it, every victim of a forgery still gets 250.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if err := rcptOnly(t, in, user, pass, []string{liveAddr})[liveAddr]; err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the genuine bounce's recipient is not refused at RCPT after 5s")
		}
	}
	for rcpt, err := range rcptOnly(t, in, user, pass, victims) {
		if err != nil {
			t.Errorf("RCPT %s: %v, want 250", rcpt, err)
		}
	}
}

// forgedID is a bounce id that does not verify: the genuine id with one
// character after the message id and hour changed, or one made under
// another secret.
func forgedID(t *testing.T, i int, realID, msgID string) string {
	t.Helper()
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	if i%2 == 0 {
		b := []byte(realID)
		pos := 20 + i%15 // characters 20 to 34: recipient hash and MAC, never padding bits
		b[pos] = alphabet[(strings.IndexByte(alphabet, b[pos])+1+i%31)%32]
		return string(b)
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	id, err := bounce.NewCodec(secret).EncodeFor(msgID, shopRP, fmt.Sprintf("victim%d@live.example", i), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// bounceSecret reads the bounce:verp key from the daemon's database.
func bounceSecret(t *testing.T, in *instance) []byte {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite", filepath.Join(in.dir, "data", "sg.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v, err := st.SystemKey(ctx, "bounce:verp", func() (string, error) { return "", errors.New("no bounce key yet") })
	if err != nil {
		t.Fatal(err)
	}
	secret, err := hex.DecodeString(v)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// bounceClient is one connection to bounce.listen, a transaction per send.
type bounceClient struct{ c *smtp.Client }

func dialBounce(t *testing.T, addr string) *bounceClient {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("mx.live.example"); err != nil {
		t.Fatal(err)
	}
	return &bounceClient{c: c}
}

// send delivers report to rcpt from the null sender; refused, when set, is
// the RCPT reply expected instead of a 250 for the whole transaction.
func (b *bounceClient) send(t *testing.T, rcpt, report string, refused *smtp.SMTPError) {
	t.Helper()
	err := b.c.SendMail("", []string{rcpt}, strings.NewReader(report))
	if refused == nil {
		if err != nil {
			t.Fatalf("bounce to %s: %v, want 250 (forgeries are accepted and dropped)", rcpt, err)
		}
		return
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != refused.Code || se.EnhancedCode != refused.EnhancedCode {
		t.Fatalf("bounce to %s: %v, want %d %v", rcpt, err, refused.Code, refused.EnhancedCode)
	}
	if err := b.c.Reset(); err != nil {
		t.Fatal(err)
	}
}

// rcptOnly opens a submission session and answers, per recipient, the
// RCPT reply (nil for 250), sending no message.
func rcptOnly(t *testing.T, in *instance, user, pass string, rcpts []string) map[string]error {
	t.Helper()
	c, err := smtp.DialStartTLS(in.smtp, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		t.Fatal(err)
	}
	out := map[string]error{}
	for i, r := range rcpts {
		if i%20 == 0 {
			if i > 0 {
				if err := c.Reset(); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Mail("news@"+shopDomain, nil); err != nil {
				t.Fatal(err)
			}
		}
		out[r] = c.Rcpt(r, nil)
	}
	return out
}
