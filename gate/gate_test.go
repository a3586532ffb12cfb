package gate_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"fmt"
	"strings"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/gate"
	"github.com/sendergate/sendergate/internal/clocktest"
	"github.com/sendergate/sendergate/loader"
	"github.com/sendergate/sendergate/msg"
	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// fixture is a real store and policy engine with one organization:
//
//	news.example.com   verified, return path mailing, granted to everyone
//	billing.example    verified, restricted to "billing"
//	pending.example    pending
//	acme.sandbox.sg.localhost  the sandbox domain
type fixture struct {
	st     *store.Store
	engine *policy.Engine
	key    crypto.Signer
	org    store.Org
	app    store.Account
	clock  *clocktest.Clock
	gate   *gate.Gate
	reg    *prometheus.Registry
}

// sandboxMetric returns the value of sendergate_sandbox_recipients_total
// for result, as reg exports it.
func sandboxMetric(t testing.TB, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sendergate_sandbox_recipients_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("sendergate_sandbox_recipients_total{result=%q} is not exported", result)
	return 0
}

func newFixture(t testing.TB, st *store.Store, sandboxLimit int) *fixture {
	t.Helper()
	key, err := dkim.GenerateKey(dkim.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	pemText, err := dkim.MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := store.At(time.Now())
	f := &fixture{st: st, key: key, clock: clocktest.New(time.Date(2026, 11, 25, 23, 58, 0, 0, time.UTC))}
	f.org = store.Org{ID: store.NewID(), Name: "acme", SandboxDomain: "acme.sandbox.sg.localhost", CreatedAt: now}
	sb := store.Domain{ID: store.NewID(), OrgID: f.org.ID, Name: f.org.SandboxDomain, Sandbox: true, Token: "sbtoken0000", Status: "verified",
		DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: pemText, Records: "[]", CreatedAt: now, VerifiedAt: now}
	if err := st.CreateOrg(ctx, f.org, sb); err != nil {
		t.Fatal(err)
	}
	account := func(name string) store.Account {
		a := store.Account{ID: store.NewID(), OrgID: f.org.ID, Name: name, Username: name + "@acme",
			PasswordHash: policy.HashPassword(name + "-password-0123456789"), CreatedAt: now, UpdatedAt: now}
		if err := st.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	f.app = account("app")
	billing := account("billing")
	domain := func(name, status, rp string) store.Domain {
		d := store.Domain{ID: store.NewID(), OrgID: f.org.ID, Name: name, Token: store.NewID()[10:], Status: status, ReturnPath: rp,
			DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: pemText, Records: "[]", CreatedAt: now}
		if err := st.CreateDomain(ctx, d, store.Event{OrgID: f.org.ID, Subject: "domain:" + name, Kind: "domain.added", At: now}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	domain("news.example.com", "verified", "mailing")
	domain("pending.example", "pending", "")
	r := domain("billing.example", "verified", "")
	if err := st.SetAccess(ctx, r.ID, true, []string{billing.ID}, store.Event{OrgID: f.org.ID, Subject: "x", Kind: "x", At: now}); err != nil {
		t.Fatal(err)
	}
	f.engine = loader.NewEngine(st, "sg.localhost", nil, domains.ZoneOptions{}, policy.Options{})
	if err := f.engine.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	f.gate = gate.New(f.engine, st, gate.Options{Hostname: "submit.test", SandboxLimit: sandboxLimit, Now: f.clock.Now, Registerer: reg})
	f.reg = reg
	return f
}

func (f *fixture) envelope(rcpts ...string) *gate.Envelope {
	if len(rcpts) == 0 {
		rcpts = []string{"r@example.net"}
	}
	return &gate.Envelope{ID: "0123456789abcdef", Username: f.app.Username, AccountID: f.app.ID, Helo: "client.test",
		RemoteIP: "192.0.2.1", TLS: true, Rcpts: rcpts, Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func TestSubmitAccepted(t *testing.T) {
	f := newFixture(t, storetest.SQLite(t), 10)
	data := "Return-Path: <x@evil.example>\nFrom: A <a@NEWS.example.com>\nSender: s@news.example.com\nSubject: hi\n\nline one\nline two\n"
	res, ref := f.gate.Submit(context.Background(), f.envelope(), []byte(data))
	if ref != nil {
		t.Fatalf("refused: %v (%v)", ref, ref.Err)
	}
	if res.EnvelopeFrom != "bounce+0123456789abcdef@mailing.news.example.com" || res.FromDomain != "news.example.com" {
		t.Errorf("envelope from %q, from domain %q", res.EnvelopeFrom, res.FromDomain)
	}
	if string(res.Body) != "line one\r\nline two\r\n" {
		t.Errorf("body = %q, want CRLF line endings", res.Body)
	}
	header := string(res.Header)
	for _, tt := range []struct {
		part string
		want bool
	}{
		{"Return-Path:", false},
		{"Received: from client.test ([192.0.2.1])\r\n\tby submit.test with ESMTPSA id 0123456789abcdef\r\n\tfor <r@example.net>;", true},
		{"\r\nMessage-ID: <", true},
		{"\r\nDate: ", true},
		{"\r\n\r\n", true},
	} {
		if got := strings.Contains(header, tt.part); got != tt.want {
			t.Errorf("header contains %q = %v, want %v:\n%s", tt.part, got, tt.want, header)
		}
	}
	if !strings.HasPrefix(res.Signature, "DKIM-Signature:") || !strings.Contains(res.Signature, "d=news.example.com") {
		t.Errorf("signature = %q", res.Signature)
	}
	verify(t, []byte(res.Signature+header+string(res.Body)), f.key, "sg1._domainkey.news.example.com")
}

func TestSubmitBodyNotCopied(t *testing.T) {
	f := newFixture(t, storetest.SQLite(t), 10)
	data := []byte("From: a@news.example.com\r\n\r\n" + strings.Repeat("body line\r\n", 1000))
	res, ref := f.gate.Submit(context.Background(), f.envelope(), data)
	if ref != nil {
		t.Fatalf("refused: %v", ref)
	}
	if &res.Body[len(res.Body)-1] != &data[len(data)-1] {
		t.Error("the body is a copy of the received data")
	}
}

func TestSubmitRefusals(t *testing.T) {
	tests := []struct {
		name     string
		env      func(*fixture) *gate.Envelope
		data     string
		code     int
		enhanced [3]int
		text     string
		reason   string
	}{
		{name: "not granted", data: "From: a@billing.example\r\n\r\nx\r\n",
			code: 550, enhanced: [3]int{5, 7, 1}, text: "billing.example is not granted", reason: "not_granted"},
		{name: "not verified", data: "From: a@pending.example\r\n\r\nx\r\n",
			code: 550, enhanced: [3]int{5, 7, 1}, text: "pending.example is not verified", reason: "not_verified"},
		{name: "unknown domain", data: "From: a@example.org\r\n\r\nx\r\n",
			code: 550, enhanced: [3]int{5, 7, 1}, text: "example.org is not a sending domain", reason: "unknown_domain"},
		{name: "subdomain is not its parent", data: "From: a@x.news.example.com\r\n\r\nx\r\n",
			code: 550, enhanced: [3]int{5, 7, 1}, reason: "unknown_domain"},
		{name: "sender not verified", data: "From: a@news.example.com\r\nSender: s@pending.example\r\n\r\nx\r\n",
			code: 550, enhanced: [3]int{5, 7, 1}, text: "pending.example", reason: "not_verified"},
		{name: "long header line", data: "From: a@news.example.com\r\nX: " + strings.Repeat("y", 999) + "\r\n\r\nx\r\n",
			code: 550, enhanced: [3]int{5, 6, 0}, text: "998"},
		{name: "no From", data: "Subject: x\r\n\r\nx\r\n", code: 550, enhanced: [3]int{5, 6, 0}},
		{name: "two From fields", data: "From: a@news.example.com\r\nFrom: b@example.org\r\n\r\nx\r\n", code: 550, enhanced: [3]int{5, 6, 0}},
		{name: "address literal", data: "From: a@[192.0.2.1]\r\n\r\nx\r\n", code: 550, enhanced: [3]int{5, 6, 0}, text: "address literal"},
		// The 2023 SMTP smuggling class: "\r.\r" ends the message early at
		// an MTA that takes a bare CR for a line ending.
		{name: "bare CR in the body", data: "From: a@news.example.com\r\n\r\nx\r.\rMAIL FROM:<a@billing.example>\r\n",
			code: 550, enhanced: [3]int{5, 6, 0}, text: "CR"},
		{name: "body line over 998 octets", data: "From: a@news.example.com\r\n\r\n" + strings.Repeat("b", 999) + "\r\n",
			code: 550, enhanced: [3]int{5, 6, 0}, text: "998"},
		{name: "Resent-From not verified", data: "From: a@news.example.com\r\nResent-From: r@pending.example\r\n\r\nx\r\n",
			code: 550, enhanced: [3]int{5, 7, 1}, text: "pending.example", reason: "not_verified"},
		{name: "Resent-Sender not granted", data: "From: a@news.example.com\r\nResent-Sender: r@billing.example\r\n\r\nx\r\n",
			code: 550, enhanced: [3]int{5, 7, 1}, text: "billing.example", reason: "not_granted"},
		{name: "fullwidth From domain", data: "From: x@\uff4eews.example.com\r\n\r\nx\r\n", code: 550, enhanced: [3]int{5, 6, 0}},
		{name: "zero-width space in the From domain", data: "From: x@news.exam\u200bple.com\r\n\r\nx\r\n", code: 550, enhanced: [3]int{5, 6, 0}},
		{name: "account removed since AUTH", data: "From: a@news.example.com\r\n\r\nx\r\n",
			env: func(f *fixture) *gate.Envelope {
				e := f.envelope()
				e.AccountID = "another-id"
				return e
			}, code: 550, enhanced: [3]int{5, 7, 1}, text: "not known", reason: "unknown_account"},
	}
	f := newFixture(t, storetest.SQLite(t), 10)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := f.envelope()
			if tt.env != nil {
				env = tt.env(f)
			}
			res, ref := f.gate.Submit(context.Background(), env, []byte(tt.data))
			if ref == nil {
				t.Fatalf("accepted: %+v", res)
			}
			if ref.Code != tt.code || ref.Enhanced != tt.enhanced || !strings.Contains(ref.Text, tt.text) {
				t.Errorf("refusal = %v, want %d %v containing %q", ref, tt.code, tt.enhanced, tt.text)
			}
			if tt.reason != "" && ref.Reason != tt.reason {
				t.Errorf("reason = %q, want %q", ref.Reason, tt.reason)
			}
			if ref.Err != nil {
				t.Errorf("an internal error for a refusal: %v", ref.Err)
			}
		})
	}
}

func TestNotReadyFailsClosed(t *testing.T) {
	st := storetest.SQLite(t)
	g := gate.New(loader.NewEngine(st, "sg.localhost", nil, domains.ZoneOptions{}, policy.Options{}), st, gate.Options{SandboxLimit: 10})
	_, ref := g.Submit(context.Background(), &gate.Envelope{Username: "app@acme"}, []byte("From: a@example.com\r\n\r\nx\r\n"))
	if ref == nil || ref.Code != 451 || ref.Enhanced != [3]int{4, 3, 0} || ref.Reason != "not_ready" {
		t.Fatalf("before the first snapshot: %v, want 451 4.3.0 not_ready", ref)
	}
	if _, ref := g.Sender("app@acme", "a@example.com"); ref == nil || ref.Code != 451 {
		t.Errorf("Sender before the first snapshot: %v", ref)
	}
}

// TestSandboxCountsRecipients: sandbox.daily_limit counts recipients, a
// message is admitted whole or not at all, the count is stored (a new
// gate sees it) and resets at the UTC day boundary.
func TestSandboxCountsRecipients(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st, 3)
		ctx := context.Background()
		sandbox := []byte("From: x@acme.sandbox.sg.localhost\r\n\r\nhi\r\n")
		send := func(g *gate.Gate, rcpts ...string) *gate.Refusal {
			_, ref := g.Submit(ctx, f.envelope(rcpts...), sandbox)
			return ref
		}
		if ref := send(f.gate, "a@example.net", "b@example.net"); ref != nil {
			t.Fatalf("2 of 3 recipients refused: %v", ref)
		}
		ref := send(f.gate, "c@example.net", "d@example.net")
		if ref == nil || ref.Code != 451 || ref.Enhanced != [3]int{4, 7, 1} || ref.Text != "sandbox daily limit reached" {
			t.Fatalf("2 more recipients past a limit of 3: %v, want 451 4.7.1", ref)
		}
		if ref := send(f.gate, "c@example.net"); ref != nil {
			t.Fatalf("the third recipient refused: %v", ref)
		}
		if ref := send(f.gate, "d@example.net"); ref == nil {
			t.Fatal("a fourth recipient accepted")
		}
		if n, _ := st.SandboxCount(ctx, f.org.ID, "2026-11-25"); n != 3 {
			t.Errorf("stored count = %d, want 3", n)
		}
		if got := sandboxMetric(t, f.reg, "admitted"); got != 3 {
			t.Errorf("admitted recipients metric = %v, want 3", got)
		}
		if got := sandboxMetric(t, f.reg, "limit"); got != 3 {
			t.Errorf("refused recipients metric = %v, want 3 (2 + 1)", got)
		}
		// Verified domains do not count against the sandbox limit.
		if _, ref := f.gate.Submit(ctx, f.envelope(), []byte("From: x@news.example.com\r\n\r\nhi\r\n")); ref != nil {
			t.Errorf("verified domain refused past the sandbox limit: %v", ref)
		}
		// A restart (a new gate on the same store) keeps the count.
		g2 := gate.New(f.engine, st, gate.Options{SandboxLimit: 3, Now: f.clock.Now})
		if ref := send(g2, "e@example.net"); ref == nil || ref.Reason != "sandbox_limit" {
			t.Errorf("after a restart: %v, want the sandbox limit", ref)
		}
		f.clock.Add(3 * time.Minute) // the next UTC day
		if ref := send(f.gate, "a@example.net", "b@example.net", "c@example.net"); ref != nil {
			t.Errorf("new UTC day still refused: %v", ref)
		}
	})
}

// TestRelayKeepsHeader: a message relayed by an MTA is signed as it is,
// nothing added or removed.
func TestRelayKeepsHeader(t *testing.T) {
	f := newFixture(t, storetest.SQLite(t), 10)
	raw := "Return-Path: <x@example.org>\r\nFrom: a@news.example.com\r\nSubject: relayed\r\n\r\n"
	h, err := msg.ReadHeader(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	res, ref := f.gate.Relay(context.Background(), &gate.Envelope{Username: "app@acme"}, h, []byte("body\n"))
	if ref != nil {
		t.Fatalf("refused: %v", ref)
	}
	if string(res.Header) != raw {
		t.Errorf("header changed:\n%q\nwant\n%q", res.Header, raw)
	}
	if len(res.ID) != 16 || res.EnvelopeFrom != "bounce+"+res.ID+"@mailing.news.example.com" {
		t.Errorf("id %q, envelope from %q", res.ID, res.EnvelopeFrom)
	}
	if v := res.SignatureValue(); strings.HasPrefix(v, "DKIM-Signature") || strings.HasSuffix(v, "\r\n") || !strings.Contains(v, "d=news.example.com;") {
		t.Errorf("SignatureValue = %q", v)
	}
	verify(t, []byte(res.Signature+raw+"body\r\n"), f.key, "sg1._domainkey.news.example.com")
}

func TestSender(t *testing.T) {
	f := newFixture(t, storetest.SQLite(t), 10)
	tests := []struct {
		user, sender string
		code         int
		reason       string
	}{
		{"app@acme", "a@news.example.com", 0, ""},
		{"app@acme", "a@NEWS.Example.com.", 0, ""},
		{"app@acme", "a@billing.example", 550, "not_granted"},
		{"app@acme", "", 550, "null_sender"},
		{"app@acme", "a@[192.0.2.1]", 550, "bad_address"},
		{"nobody@acme", "a@news.example.com", 550, "unknown_account"},
	}
	for _, tt := range tests {
		_, ref := f.gate.Sender(tt.user, tt.sender)
		switch {
		case tt.code == 0 && ref != nil:
			t.Errorf("Sender(%q, %q) refused: %v", tt.user, tt.sender, ref)
		case tt.code != 0 && (ref == nil || ref.Code != tt.code || ref.Reason != tt.reason):
			t.Errorf("Sender(%q, %q) = %v, want %d %s", tt.user, tt.sender, ref, tt.code, tt.reason)
		}
	}
}

// verify checks the one DKIM signature of data against key's public half,
// published at name.
func verify(t *testing.T, data []byte, key crypto.Signer, name string) {
	t.Helper()
	txt, err := dkim.TXTValue(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(n string) ([]string, error) {
		if n != name {
			return nil, fmt.Errorf("unexpected lookup %q", n)
		}
		return []string{txt}, nil
	}
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(data), &msgauth.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("verify: %v %+v", err, vs)
	}
}

// BenchmarkSubmit is the whole stage for a 10 KiB message: parse,
// decide, prepare, sign (Ed25519).
func BenchmarkSubmit(b *testing.B) {
	f := newFixture(b, storetest.SQLite(b), 10)
	data := []byte("From: a@news.example.com\r\nTo: r@example.net\r\nSubject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 128))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ref := f.gate.Submit(context.Background(), f.envelope(), data); ref != nil {
			b.Fatalf("refused: %v", ref)
		}
	}
}
