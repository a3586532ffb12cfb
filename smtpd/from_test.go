package smtpd_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/store"
)

var (
	ok250     = smtp.EnhancedCode{2, 0, 0}
	refused   = smtp.EnhancedCode{5, 7, 1}
	malformed = smtp.EnhancedCode{5, 6, 0}
)

func TestFromPolicy(t *testing.T) {
	f, c := testServerAuthenticated(t)
	tests := []struct {
		name     string
		headers  []string
		wantCode int
		wantEnh  smtp.EnhancedCode
		wantText string // the reply must contain it
	}{
		{name: "verified and granted", headers: []string{"From: a@news.example.com"}, wantCode: 250, wantEnh: ok250},
		{name: "pending", headers: []string{"From: a@pending.example"}, wantCode: 550, wantEnh: refused, wantText: "pending.example is not verified"},
		{name: "failing still sends", headers: []string{"From: a@failing.example"}, wantCode: 250, wantEnh: ok250},
		{name: "revoked", headers: []string{"From: a@revoked.example"}, wantCode: 550, wantEnh: refused, wantText: "revoked.example lost its verification"},
		{name: "unknown domain", headers: []string{"From: a@unknown.example"}, wantCode: 550, wantEnh: refused, wantText: "unknown.example is not a sending domain"},
		{name: "other organization's verified domain", headers: []string{"From: a@bank.example"}, wantCode: 550, wantEnh: refused, wantText: "bank.example is not a sending domain"},
		{name: "restricted and not granted", headers: []string{"From: a@restricted.example"}, wantCode: 550, wantEnh: refused, wantText: "restricted.example is not granted"},
		{name: "subdomain is not its parent", headers: []string{"From: a@sub.news.example.com"}, wantCode: 550, wantEnh: refused, wantText: "sub.news.example.com"},
		{name: "uppercase domain", headers: []string{"From: A@NEWS.Example.COM"}, wantCode: 250, wantEnh: ok250},
		// The root dot names the same domain: normalized, then allowed.
		{name: "trailing dot", headers: []string{"From: a@news.example.com."}, wantCode: 250, wantEnh: ok250},
		{name: "trailing dot in angle brackets", headers: []string{"From: A <a@news.example.com.>"}, wantCode: 250, wantEnh: ok250},
		{name: "trailing dot on an unknown domain", headers: []string{"From: a@unknown.example."}, wantCode: 550, wantEnh: refused, wantText: "unknown.example is not a sending domain"},
		{name: "IDN U-label matches the A-label domain", headers: []string{"From: a@bücher.example"}, wantCode: 250, wantEnh: ok250},
		{name: "sandbox domain", headers: []string{"From: a@acme.sandbox.sg.localhost"}, wantCode: 250, wantEnh: ok250},
		{name: "two From fields", headers: []string{"From: a@news.example.com", "From: a@unknown.example"}, wantCode: 550, wantEnh: malformed, wantText: "exactly one From"},
		{name: "two mailboxes without Sender", headers: []string{"From: a@news.example.com, b@news.example.com"}, wantCode: 550, wantEnh: malformed, wantText: "Sender"},
		{name: "two mailboxes with a good Sender", headers: []string{"From: a@news.example.com, b@failing.example", "Sender: s@news.example.com"}, wantCode: 250, wantEnh: ok250},
		{name: "Sender of an unverified domain", headers: []string{"From: a@news.example.com, b@news.example.com", "Sender: s@pending.example"}, wantCode: 550, wantEnh: refused, wantText: "pending.example"},
		{name: "second From mailbox not allowed", headers: []string{"From: a@news.example.com, b@bank.example", "Sender: s@news.example.com"}, wantCode: 550, wantEnh: refused, wantText: "bank.example"},
		{name: "display-name trick", headers: []string{`From: "ceo@bank.example" <x@evil.example>`}, wantCode: 550, wantEnh: refused, wantText: "evil.example"},
		{name: "encoded-word display name", headers: []string{"From: =?utf-8?q?ceo=40bank.example?= <x@evil.example>"}, wantCode: 550, wantEnh: refused, wantText: "evil.example"},
		{name: "encoded-word display name, own domain", headers: []string{"From: =?utf-8?q?Andr=C3=A9?= <andre@news.example.com>"}, wantCode: 250, wantEnh: ok250},
		{name: "encoded word alone is no address", headers: []string{"From: =?utf-8?q?ceo=40news.example.com?="}, wantCode: 550, wantEnh: malformed},
		{name: "missing From", headers: []string{"Sender: s@news.example.com"}, wantCode: 550, wantEnh: malformed, wantText: "From"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.upstream.Messages())
			reply := mustSend(t, c, message(tt.headers...))
			wantReply(t, reply, tt.wantCode, tt.wantEnh)
			if !strings.Contains(reply.Message, tt.wantText) {
				t.Errorf("reply text %q does not contain %q", reply.Message, tt.wantText)
			}
			got := len(f.upstream.Messages()) - before
			if want := map[bool]int{true: 1, false: 0}[tt.wantCode == 250]; got != want {
				t.Errorf("upstream got %d messages, want %d", got, want)
			}
		})
	}
}

func TestAcceptedMessageAtUpstream(t *testing.T) {
	f, c := testServerAuthenticated(t)
	body := "Return-Path: <forged@evil.example>\r\nFrom: News <news@news.example.com>\r\nTo: r@example.net\r\nSubject: hi\r\n\r\nHello,\r\n.leading dot\r\n"
	reply := mustSend(t, c, body, "r@example.net", "s@example.net")
	wantReply(t, reply, 250, ok250)

	msgs := f.upstream.Messages()
	if len(msgs) != 1 {
		t.Fatalf("upstream got %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	id := strings.TrimSuffix(strings.TrimPrefix(m.From, "bounce+"), "@mailing.news.example.com")
	if len(id) != 16 || m.From != "bounce+"+id+"@mailing.news.example.com" {
		t.Fatalf("envelope sender = %q, want bounce+<16 hex>@mailing.news.example.com", m.From)
	}
	if !strings.Contains(reply.Message, id) {
		t.Errorf("reply %q does not name the transaction id %s", reply.Message, id)
	}
	if strings.Join(m.To, ",") != "r@example.net,s@example.net" {
		t.Errorf("envelope recipients = %v", m.To)
	}
	header, _, _ := bytes.Cut(m.Data, []byte("\r\n\r\n"))
	for _, tt := range []struct {
		field string
		want  bool
	}{
		{"\r\nReturn-Path:", false}, {"DKIM-Signature:", true}, {"\r\nMessage-ID:", true},
		{"\r\nDate:", true}, {"\r\nReceived: from client.test ([127.0.0.1])", true}, {"id " + id, true},
	} {
		if got := bytes.Contains(header, []byte(tt.field)); got != tt.want {
			t.Errorf("header contains %q = %v, want %v:\n%s", tt.field, got, tt.want, header)
		}
	}
	if !bytes.HasSuffix(m.Data, []byte("\r\nHello,\r\n.leading dot\r\n")) {
		t.Errorf("body changed: %q", m.Data)
	}
	verifyDKIM(t, f, m.Data, "news.example.com")
}

// verifyDKIM checks that data carries one valid signature by domain, with
// the key record served by a LookupTXT stub (the DNS zone is tested
// elsewhere).
func verifyDKIM(t *testing.T, f *fixture, data []byte, domain string) {
	t.Helper()
	txt, err := dkim.TXTValue(f.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) ([]string, error) {
		if name != "sg1._domainkey."+domain {
			return nil, fmt.Errorf("unexpected lookup %q", name)
		}
		return []string{txt}, nil
	}
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(data), &msgauth.VerifyOptions{LookupTXT: lookup})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(vs) != 1 {
		t.Fatalf("%d signatures, want 1", len(vs))
	}
	if vs[0].Err != nil {
		t.Fatalf("signature does not verify: %v", vs[0].Err)
	}
	if vs[0].Domain != domain {
		t.Errorf("d=%s, want %s", vs[0].Domain, domain)
	}
}

func TestRevokedGrantEnforcedAfterReload(t *testing.T) {
	f, c := testServerAuthenticated(t)
	d := f.domains["news.example.com"]
	from := message("From: a@news.example.com")
	wantReply(t, mustSend(t, c, from), 250, ok250)

	// Restrict the domain to the other account: app loses it.
	ev := store.Event{OrgID: f.acme.ID, Subject: "domain:" + d.Name, Kind: "domain.access", At: store.At(time.Now())}
	if err := f.store.SetAccess(t.Context(), d.ID, true, []string{f.other.ID}, ev); err != nil {
		t.Fatal(err)
	}
	f.reload(t)
	reply := mustSend(t, c, from)
	wantReply(t, reply, 550, refused)
	if !strings.Contains(reply.Message, "news.example.com is not granted") {
		t.Errorf("reply %q does not say the domain is not granted", reply.Message)
	}
	if n := len(f.upstream.Messages()); n != 1 {
		t.Errorf("upstream has %d messages, want 1", n)
	}
}
