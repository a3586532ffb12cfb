package smtpd

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/policy"
)

// fixedPolicy answers every Admit with dec and records the mailboxes.
type fixedPolicy struct {
	dec policy.Decision
	got []string
}

func (p *fixedPolicy) Current() (*policy.Snapshot, error) { return nil, policy.ErrNotReady }

func (p *fixedPolicy) Admit(_ context.Context, _ *policy.Account, mailboxes ...string) policy.Decision {
	p.got = slices.Clone(mailboxes)
	return p.dec
}

func allowAs(key crypto.Signer) policy.Decision {
	d := &policy.Domain{Name: "news.example.com", Selector: "sg1", Key: key, BounceDomain: "mailing.news.example.com"}
	return policy.Decision{Allowed: true, Reason: policy.OK, Domain: d, DomainName: d.Name}
}

func testPipeline(dec policy.Decision) (*pipeline, *fixedPolicy) {
	pol := &fixedPolicy{dec: dec}
	now := func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }
	return newPipeline("submit.test", pol, now), pol
}

func newSubmission(data string) *submission {
	return &submission{ID: "0123456789abcdef", Account: &policy.Account{Username: "app"}, Helo: "client.test",
		RemoteIP: "192.0.2.1", TLS: true, Rcpts: []string{"r@example.net"}, Data: []byte(data)}
}

func TestPipelineAccepted(t *testing.T) {
	key, err := dkim.GenerateKey(dkim.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	p, pol := testPipeline(allowAs(key))
	data := "Return-Path: <x@evil.example>\nFrom: A <a@NEWS.example.com>, b@bücher.example\nSender: s@news.example.com\nSubject: hi\n\nline one\nline two\n"
	sub := newSubmission(data)
	out := p.process(context.Background(), sub)
	if out.Reply != nil || out.Message == nil {
		t.Fatalf("refused: %v %v", out.Reply, out.Err)
	}
	if want := []string{"a@news.example.com", "b@xn--bcher-kva.example", "s@news.example.com"}; !slices.Equal(pol.got, want) {
		t.Errorf("policy asked about %q, want %q", pol.got, want)
	}
	m := out.Message
	if m.ID != sub.ID || m.From != "bounce+0123456789abcdef@mailing.news.example.com" || !slices.Equal(m.To, sub.Rcpts) {
		t.Errorf("envelope = %q %q %q", m.ID, m.From, m.To)
	}
	if len(m.Data) != 3 || !bytes.HasPrefix(m.Data[0], []byte("DKIM-Signature:")) {
		t.Fatalf("Data is not {signature, header, body}: %q", m.Data)
	}
	if string(m.Data[2]) != "line one\r\nline two\r\n" {
		t.Errorf("body = %q, want CRLF line endings", m.Data[2])
	}
	header := string(m.Data[1])
	for _, tt := range []struct {
		part string
		want bool
	}{
		{"Return-Path:", false},
		{"Received: from client.test ([192.0.2.1])\r\n\tby submit.test with ESMTPSA id 0123456789abcdef\r\n\tfor <r@example.net>;", true},
		{"\r\nMessage-ID: <", true},
		{"\r\nDate: Sun, 01 Mar 2026 12:00:00 +0000\r\n", true},
		{"\r\n\r\n", true},
	} {
		if got := strings.Contains(header, tt.part); got != tt.want {
			t.Errorf("header contains %q = %v, want %v:\n%s", tt.part, got, tt.want, header)
		}
	}
	var all bytes.Buffer
	for _, b := range m.Data {
		all.Write(b)
	}
	verify(t, all.Bytes(), key)
}

func TestPipelineBodyNotCopied(t *testing.T) {
	key, err := dkim.GenerateKey(dkim.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := testPipeline(allowAs(key))
	sub := newSubmission("From: a@news.example.com\r\n\r\n" + strings.Repeat("body line\r\n", 1000))
	out := p.process(context.Background(), sub)
	if out.Message == nil {
		t.Fatalf("refused: %v", out.Reply)
	}
	body := out.Message.Data[2]
	if &body[len(body)-1] != &sub.Data[len(sub.Data)-1] {
		t.Error("the relayed body is a copy of the received data")
	}
}

func TestPipelineRefusals(t *testing.T) {
	key, err := dkim.GenerateKey(dkim.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	notGranted := policy.Decision{Reason: policy.NotGranted, DomainName: "news.example.com"}
	tests := []struct {
		name     string
		dec      policy.Decision
		data     string
		wantCode int
		wantEnh  smtp.EnhancedCode
		wantText string
		wantErr  bool // an internal error to log
	}{
		{name: "permanent refusal", dec: notGranted, data: "From: a@news.example.com\r\n\r\nx\r\n",
			wantCode: 550, wantEnh: smtp.EnhancedCode{5, 7, 1}, wantText: "news.example.com is not granted"},
		{name: "sandbox limit", dec: policy.Decision{Temporary: true, Reason: policy.SandboxLimit}, data: "From: a@news.example.com\r\n\r\nx\r\n",
			wantCode: 451, wantEnh: smtp.EnhancedCode{4, 7, 1}, wantText: "sandbox daily limit reached"},
		{name: "not ready", dec: policy.Decision{Temporary: true, Reason: policy.NotReady}, data: "From: a@news.example.com\r\n\r\nx\r\n",
			wantCode: 451, wantEnh: smtp.EnhancedCode{4, 3, 0}},
		{name: "internal", dec: policy.Decision{Temporary: true, Reason: policy.Internal}, data: "From: a@news.example.com\r\n\r\nx\r\n",
			wantCode: 451, wantEnh: smtp.EnhancedCode{4, 3, 0}},
		{name: "long header line", dec: allowAs(key), data: "From: a@news.example.com\r\nX: " + strings.Repeat("y", 999) + "\r\n\r\nx\r\n",
			wantCode: 550, wantEnh: smtp.EnhancedCode{5, 6, 0}, wantText: "998"},
		{name: "no From", dec: allowAs(key), data: "Subject: x\r\n\r\nx\r\n",
			wantCode: 550, wantEnh: smtp.EnhancedCode{5, 6, 0}},
		{name: "address literal", dec: allowAs(key), data: "From: a@[192.0.2.1]\r\n\r\nx\r\n",
			wantCode: 550, wantEnh: smtp.EnhancedCode{5, 1, 7}},
		{name: "domain without key", dec: allowAs(nil), data: "From: a@news.example.com\r\n\r\nx\r\n",
			wantCode: 451, wantEnh: smtp.EnhancedCode{4, 3, 0}, wantText: "0123456789abcdef", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := testPipeline(tt.dec)
			out := p.process(context.Background(), newSubmission(tt.data))
			if out.Message != nil || out.Reply == nil {
				t.Fatalf("not refused: %+v", out)
			}
			if out.Reply.Code != tt.wantCode || out.Reply.EnhancedCode != tt.wantEnh || !strings.Contains(out.Reply.Message, tt.wantText) {
				t.Errorf("reply = %d %v %q, want %d %v containing %q", out.Reply.Code, out.Reply.EnhancedCode, out.Reply.Message, tt.wantCode, tt.wantEnh, tt.wantText)
			}
			if (out.Err != nil) != tt.wantErr {
				t.Errorf("internal error = %v, want one: %v", out.Err, tt.wantErr)
			}
		})
	}
}

func TestToCRLF(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "CRLF unchanged", in: "a\r\nb\r\n", want: "a\r\nb\r\n"},
		{name: "bare LF", in: "a\nb\n", want: "a\r\nb\r\n"},
		{name: "mixed", in: "\na\r\nb\n", want: "\r\na\r\nb\r\n"},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(toCRLF([]byte(tt.in))); got != tt.want {
				t.Errorf("toCRLF(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// verify checks the one DKIM signature of data against key's public half.
func verify(t *testing.T, data []byte, key crypto.Signer) {
	t.Helper()
	txt, err := dkim.TXTValue(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) ([]string, error) {
		if name != "sg1._domainkey.news.example.com" {
			return nil, fmt.Errorf("unexpected lookup %q", name)
		}
		return []string{txt}, nil
	}
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(data), &msgauth.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("verify: %v %+v", err, vs)
	}
}

func BenchmarkPipeline(b *testing.B) {
	key, err := dkim.GenerateKey(dkim.RSA2048)
	if err != nil {
		b.Fatal(err)
	}
	p, _ := testPipeline(allowAs(key))
	data := "From: a@news.example.com\r\nTo: r@example.net\r\nSubject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 128) // 10 KiB
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if out := p.process(context.Background(), newSubmission(data)); out.Message == nil {
			b.Fatalf("refused: %v", out.Reply)
		}
	}
}
