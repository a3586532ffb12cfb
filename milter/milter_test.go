package milter_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/milter"
)

// testMessage is a message as an SMTP client typed it: irregular spacing
// after colons and a folded Subject, which Postfix hands the milter
// without the one leading space and with the fold as LF + TAB.
type testMessage struct {
	user    string // {auth_authen}; empty = unauthenticated
	from    string // header From value
	extra   [][2]string
	body    string
	chunked bool // send the body in 3-octet chunks
}

func (m testMessage) fields() [][2]string {
	f := [][2]string{
		{"From", m.from},
		{"To", "rcpt@dest.example"},
		{"Subject", "quarterly\n\tnumbers  inside"},
		{"Date", "Mon, 2 Jun 2025 10:00:00 +0000"},
		{"Message-ID", "<1@client.example>"},
	}
	return append(f, m.extra...)
}

// raw is the message as Postfix writes it after the milter's InsertHeader.
func (m testMessage) raw(inserted []gomilter.ModifyAction) string {
	var b strings.Builder
	for _, a := range inserted {
		if a.Code == gomilter.ActInsertHeader {
			b.WriteString(a.HeaderName + ": " + strings.ReplaceAll(a.HeaderValue, "\n", "\r\n") + "\r\n")
		}
	}
	for _, f := range m.fields() {
		sep := ":" // the client wrote no space; Postfix passes "value"
		if f[0] == "Subject" {
			sep = ":   " // and three here
		}
		b.WriteString(f[0] + sep + strings.ReplaceAll(f[1], "\n", "\r\n") + "\r\n")
	}
	b.WriteString("\r\n" + m.body)
	return b.String()
}

type milterClient struct {
	s *gomilter.ClientSession
}

func dialMilter(t *testing.T, addr string) *milterClient {
	t.Helper()
	// A version 2 milter only downgrades a client that offers v2 actions:
	// the gate still sends SMFIR_CHGFROM, and Postfix (v6) accepts it.
	c := gomilter.NewClientWithOptions("tcp", addr, gomilter.ClientOptions{
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatalf("milter session: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return &milterClient{s: s}
}

// send runs one message through the milter and returns the modifications
// and the first action that is not "continue".
func (c *milterClient) send(t *testing.T, m testMessage) ([]gomilter.ModifyAction, *gomilter.Action) {
	t.Helper()
	check := func(act *gomilter.Action, err error) bool {
		t.Helper()
		if err != nil {
			t.Fatalf("milter: %v", err)
		}
		return act.Code == gomilter.ActContinue
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("milter: %v", err)
		}
	}
	must(c.s.Macros(gomilter.CodeMail, "i", "QID1", "{auth_type}", "PLAIN", "{auth_authen}", m.user))
	if act, err := c.s.Mail("sender@client.example", nil); !check(act, err) {
		return nil, act
	}
	// Like Postfix: a macro packet per stage, replacing the previous map.
	must(c.s.Macros(gomilter.CodeRcpt, "{rcpt_addr}", "rcpt@dest.example"))
	if act, err := c.s.Rcpt("rcpt@dest.example", nil); !check(act, err) {
		return nil, act
	}
	for _, f := range m.fields() {
		if act, err := c.s.HeaderField(f[0], f[1]); !check(act, err) {
			return nil, act
		}
	}
	if act, err := c.s.HeaderEnd(); !check(act, err) {
		return nil, act
	}
	step := len(m.body)
	if m.chunked {
		step = 3
	}
	for i := 0; i < len(m.body); i += step {
		if act, err := c.s.BodyChunk([]byte(m.body[i:min(i+step, len(m.body))])); !check(act, err) {
			return nil, act
		}
	}
	must(c.s.Macros(gomilter.CodeEOB, "i", "QID1"))
	mods, act, err := c.s.End()
	must(err)
	return mods, act
}

// wantSigned checks the modifications of an accepted message: one
// DKIM-Signature inserted at the top that verifies over the message as
// Postfix writes it, and the envelope sender changed to bounce+ID@bounce.
func wantSigned(t *testing.T, f *fixture, m testMessage, mods []gomilter.ModifyAction, act *gomilter.Action, domain, bounce string) {
	t.Helper()
	if act.Code != gomilter.ActAccept {
		t.Fatalf("action = %c %d %q, want accept", act.Code, act.SMTPCode, act.SMTPText)
	}
	var inserts, froms int
	for _, a := range mods {
		switch a.Code {
		case gomilter.ActInsertHeader:
			inserts++
			if a.HeaderName != "DKIM-Signature" || a.HeaderIndex != 0 {
				t.Errorf("inserted %s at %d, want DKIM-Signature at 0", a.HeaderName, a.HeaderIndex)
			}
		case gomilter.ActChangeFrom:
			froms++
			if !strings.HasPrefix(a.From, "<bounce+") || !strings.HasSuffix(a.From, bounce+">") {
				t.Errorf("envelope sender = %q, want <bounce+ID...%s>", a.From, bounce)
			}
		default:
			t.Errorf("unexpected modification %c", a.Code)
		}
	}
	if inserts != 1 || froms != 1 {
		t.Fatalf("%d inserts and %d sender changes, want 1 and 1", inserts, froms)
	}
	lookup := func(name string) ([]string, error) {
		if name != testSelector+"._domainkey."+domain {
			return nil, fmt.Errorf("unexpected key lookup %q", name)
		}
		return []string{f.txt}, nil
	}
	vs, err := msgauth.VerifyWithOptions(strings.NewReader(m.raw(mods)), &msgauth.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(vs) != 1 {
		t.Fatalf("verify: %d results, %v", len(vs), err)
	}
	if vs[0].Err != nil || vs[0].Domain != domain {
		t.Errorf("signature d=%s: %v", vs[0].Domain, vs[0].Err)
	}
}

func wantReply(t *testing.T, act *gomilter.Action, code int, text string) {
	t.Helper()
	if act.Code != gomilter.ActReplyCode || act.SMTPCode != code || !strings.HasPrefix(act.SMTPText, text) {
		t.Errorf("action = %c %d %q, want %d %q", act.Code, act.SMTPCode, act.SMTPText, code, text)
	}
}

func TestMilterMessagesOnOneConnection(t *testing.T) {
	f := newFixture(t, dkim.Ed25519)
	c := dialMilter(t, startMilter(t, milter.MilterConfig{}, f.engine))
	allowed := testMessage{user: testUser, from: "News <news@example.com>", body: "Hello,\r\n\r\nnumbers  inside.\r\n"}
	refused := testMessage{user: testUser, from: "ceo@bank.example", body: "pay\r\n"}
	sandbox := testMessage{user: testUser, from: "x@" + testSandbox, body: "lf only\nbody\n", chunked: true}
	unauth := testMessage{from: "ceo@bank.example", body: "x\r\n"}

	mods, act := c.send(t, allowed)
	wantSigned(t, f, allowed, mods, act, "example.com", "@rp.example.com")

	_, act = c.send(t, refused)
	wantReply(t, act, 550, "5.7.1 domain bank.example is not a sending domain of your organization")

	mods, act = c.send(t, allowed)
	wantSigned(t, f, allowed, mods, act, "example.com", "@rp.example.com")

	// An aborted message leaves nothing behind for the next one.
	if err := c.s.Macros(gomilter.CodeMail, "{auth_authen}", testUser); err != nil {
		t.Fatal(err)
	}
	if _, err := c.s.Mail("a@client.example", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.s.HeaderField("From", "ceo@bank.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.s.Abort(); err != nil {
		t.Fatal(err)
	}
	mods, act = c.send(t, sandbox)
	wantSigned(t, f, testMessage{from: sandbox.from, body: "lf only\r\nbody\r\n"}, mods, act, testSandbox, ".bounce."+testZone)

	// Unauthenticated mail passes untouched; the gate answers at MAIL.
	mods, act = c.send(t, unauth)
	if act.Code != gomilter.ActAccept || len(mods) != 0 {
		t.Errorf("unauthenticated: action %c, %d modifications, want accept untouched", act.Code, len(mods))
	}
	_, act = c.send(t, refused)
	wantReply(t, act, 550, "5.7.1 domain bank.example")
}

func TestMilterRefusals(t *testing.T) {
	f := newFixture(t, dkim.Ed25519)
	base := testMessage{user: testUser, from: "news@example.com", body: "hi\r\n"}
	with := func(m testMessage, change func(*testMessage)) testMessage { change(&m); return m }
	tests := []struct {
		name string
		cfg  milter.MilterConfig
		pol  milter.Stage
		msg  testMessage
		code int
		text string
	}{
		{name: "unauthenticated reject", cfg: milter.MilterConfig{Unauthenticated: "reject"}, msg: with(base, func(m *testMessage) { m.user = "" }), code: 550, text: "5.7.1 authentication required"},
		{name: "unknown account", msg: with(base, func(m *testMessage) { m.user = "app" }), code: 550, text: `5.7.1 SMTP account "app" is not known to sendergate`},
		{name: "not granted", msg: with(base, func(m *testMessage) { m.from = "a@restricted.example" }), code: 550, text: "5.7.1 domain restricted.example is not granted"},
		{name: "sender checked too", msg: with(base, func(m *testMessage) { m.extra = [][2]string{{"Sender", "x@pending.example"}} }), code: 550, text: "5.7.1 domain pending.example is not verified yet"},
		{name: "two From fields", msg: with(base, func(m *testMessage) { m.extra = [][2]string{{"From", "b@example.com"}} }), code: 550, text: "5.6.0 message must have exactly one From header field"},
		{name: "field injection", msg: with(base, func(m *testMessage) { m.extra = [][2]string{{"X-A", "a\nFrom: ceo@bank.example"}} }), code: 550, text: "5.6.0 header field X-A has a line break that is not folding"},
		{name: "long header line", msg: with(base, func(m *testMessage) { m.extra = [][2]string{{"X-A", strings.Repeat("a", 1000)}} }), code: 550, text: "5.6.0 header field X-A has a line longer than 998 octets"},
		{name: "too large", cfg: milter.MilterConfig{MaxMessageBytes: 300}, msg: with(base, func(m *testMessage) { m.body = strings.Repeat("a", 400) }), code: 552, text: "5.3.4 message exceeds 300 octets"},
		{name: "policy not loaded", pol: notLoaded(t), msg: base, code: 451, text: "4.3.0 authorization data not loaded yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := tt.pol
			if pol == nil {
				pol = f.engine
			}
			c := dialMilter(t, startMilter(t, tt.cfg, pol))
			_, act := c.send(t, tt.msg)
			wantReply(t, act, tt.code, tt.text)
			// The connection stays usable: the next message is decided afresh.
			if tt.pol == nil {
				mods, act := c.send(t, base)
				wantSigned(t, f, base, mods, act, "example.com", "@rp.example.com")
			}
		})
	}
}
