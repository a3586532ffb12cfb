package addresses_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/addresses"
	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/internal/clocktest"
	"github.com/sendergate/sendergate/relay"
	"github.com/sendergate/sendergate/relay/relaytest"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

const (
	testZone    = "sg.localhost"
	confirmFrom = "no-reply@sg.localhost"
	publicURL   = "http://127.0.0.1:8025"
	ttl         = 24 * time.Hour
	resendLimit = 2
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// env is the address service on a real store, sending through a real
// upstream client to a recording SMTP server.
type env struct {
	st     *store.Store
	smtp   *relaytest.Server
	clock  *clocktest.Clock
	sysKey crypto.Signer
	svc    *addresses.Service
	org    store.Org
}

// sysKeys is generated once: RSA generation is slow and the key's value
// does not matter to the tests.
var sysKeys = sync.OnceValues(func() (crypto.Signer, error) { return dkim.GenerateKey(dkim.RSA2048) })

func newEnv(t *testing.T, st *store.Store) *env {
	t.Helper()
	key, err := sysKeys()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, smtp: relaytest.NewServer(t), clock: clocktest.New(t0), sysKey: key}
	up := relay.NewUpstream(relay.UpstreamConfig{Addr: e.smtp.Addr})
	t.Cleanup(func() { _ = up.Close() })
	e.svc = addresses.New(st, addresses.Options{
		PublicURL: publicURL + "/", From: confirmFrom, TTL: ttl, Hostname: testZone, ResendLimit: resendLimit,
		Sender: up, Signer: addresses.Signer{Domain: testZone, Selector: "sg1", Key: key}, Now: e.clock.Now,
	})
	e.org = newOrg(t, st, "acme")
	e.addDomain(t, e.org, "example.com", domains.Verified)
	return e
}

func newOrg(t *testing.T, st *store.Store, name string) store.Org {
	t.Helper()
	org := store.Org{ID: store.NewID(), Name: name, SandboxDomain: name + ".sandbox." + testZone, CreatedAt: store.At(t0)}
	sb := domainRow(org, org.SandboxDomain, domains.Verified)
	sb.Sandbox = true
	if err := st.CreateOrg(context.Background(), org, sb); err != nil {
		t.Fatal(err)
	}
	return org
}

func domainRow(org store.Org, name string, status domains.Status) store.Domain {
	return store.Domain{ID: store.NewID(), OrgID: org.ID, Name: name, Token: domains.NewToken(), Status: string(status),
		DKIMSelector: "sg1", DKIMAlgorithm: "ed25519", DKIMKey: "unused", Records: "[]", CreatedAt: store.At(t0)}
}

// addDomain stores a domain row directly in the given status.
func (e *env) addDomain(t *testing.T, org store.Org, name string, status domains.Status) {
	t.Helper()
	ev := store.Event{OrgID: org.ID, Subject: "domain:" + name, Kind: "domain.added", At: store.At(t0)}
	if err := e.st.CreateDomain(context.Background(), domainRow(org, name, status), ev); err != nil {
		t.Fatal(err)
	}
}

var linkRE = regexp.MustCompile(regexp.QuoteMeta(publicURL) + `/confirm\?token=([A-Za-z0-9_-]+)`)

// confirmation is a captured confirmation email, checked and taken apart.
type confirmation struct {
	header mail.Header
	plain  string
	html   string
	token  string
}

// lastMail checks the newest captured message to addr: envelope, headers,
// DKIM signature (verified against sendergate's key record), both parts
// and the link; it returns the message with its token.
func (e *env) lastMail(t *testing.T, addr string) confirmation {
	t.Helper()
	msgs := e.smtp.Messages()
	if len(msgs) == 0 {
		t.Fatal("no mail captured")
	}
	m := msgs[len(msgs)-1]
	if m.From != confirmFrom || len(m.To) != 1 || m.To[0] != addr {
		t.Errorf("envelope %s -> %v, want %s -> %s", m.From, m.To, confirmFrom, addr)
	}
	e.verifyDKIM(t, m.Data)
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("captured mail: %v", err)
	}
	c := confirmation{header: msg.Header}
	if got := msg.Header.Get("From"); got != confirmFrom {
		t.Errorf("From: %q, want %q", got, confirmFrom)
	}
	if got := msg.Header.Get("To"); got != addr {
		t.Errorf("To: %q, want %q", got, addr)
	}
	c.plain, c.html = parts(t, msg)
	pm, hm := linkRE.FindStringSubmatch(c.plain), linkRE.FindStringSubmatch(c.html)
	if pm == nil || hm == nil || pm[1] != hm[1] {
		t.Fatalf("link in plain %v and html %v parts differ or are missing:\n%s\n%s", pm, hm, c.plain, c.html)
	}
	c.token = pm[1]
	return c
}

func (e *env) verifyDKIM(t *testing.T, raw []byte) {
	t.Helper()
	txt, err := dkim.TXTValue(e.sysKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) ([]string, error) {
		if name == "sg1._domainkey."+testZone {
			return []string{txt}, nil
		}
		return nil, fmt.Errorf("no TXT at %s", name)
	}
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(raw), &msgauth.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(vs) != 1 {
		t.Fatalf("DKIM: %v, %d signatures", err, len(vs))
	}
	if vs[0].Err != nil || vs[0].Domain != testZone {
		t.Errorf("DKIM signature d=%s: %v", vs[0].Domain, vs[0].Err)
	}
}

// parts returns the text/plain and text/html parts of a
// multipart/alternative message.
func parts(t *testing.T, msg *mail.Message) (plain, html string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			plain = string(b)
		case "text/html":
			html = string(b)
		}
	}
	if plain == "" || html == "" {
		t.Fatalf("want a plain text and an HTML part; plain %q html %q", plain, html)
	}
	return plain, html
}

func (e *env) status(t *testing.T, email string) string {
	t.Helper()
	a, err := e.st.AddressByEmail(context.Background(), e.org.ID, email)
	if err != nil {
		t.Fatal(err)
	}
	return a.Status
}

func (e *env) kinds(t *testing.T, org store.Org, email string) string {
	t.Helper()
	evs, err := e.st.Events(context.Background(), org.ID, "address:"+email)
	if err != nil {
		t.Fatal(err)
	}
	var k []string
	for _, ev := range evs {
		k = append(k, ev.Kind)
	}
	return strings.Join(k, ",")
}

func wantStateError(t *testing.T, what string, err error, code string) {
	t.Helper()
	var se *domains.StateError
	if !errors.As(err, &se) || se.Code != code {
		t.Errorf("%s: err = %v, want *domains.StateError %s", what, err, code)
	}
}

func TestConfirmFlow(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newEnv(t, st)
		a, err := e.svc.Add(ctx, e.org, "Contact.Desk@Example.COM")
		if err != nil {
			t.Fatalf("Add: %v", err)
		}
		const addr = "Contact.Desk@example.com"
		if a.Email != addr || a.Status != addresses.Pending || a.Domain != "example.com" {
			t.Errorf("added %+v", a)
		}
		c := e.lastMail(t, addr)
		if raw, err := base64.RawURLEncoding.DecodeString(c.token); err != nil || len(raw) < 16 {
			t.Errorf("token %q: want >= 128 random bits (%v)", c.token, err)
		}
		stored, _ := st.AddressByEmail(ctx, e.org.ID, addr)
		if stored.TokenHash == "" || strings.Contains(stored.TokenHash, c.token) {
			t.Errorf("token stored as %q, want a hash", stored.TokenHash)
		}
		if !stored.TokenExpiresAt.Equal(t0.Add(ttl)) {
			t.Errorf("expires at %v, want %v", stored.TokenExpiresAt, t0.Add(ttl))
		}
		if !strings.Contains(c.header.Get("DKIM-Signature"), "d="+testZone) {
			t.Errorf("DKIM-Signature %q", c.header.Get("DKIM-Signature"))
		}

		e.clock.Set(t0.Add(time.Hour))
		got, err := e.svc.Confirm(ctx, c.token)
		if err != nil || got.Status != addresses.Confirmed || got.Email != addr {
			t.Fatalf("Confirm: %+v, %v", got, err)
		}
		conf, _ := st.ConfirmedAddresses(ctx)
		if len(conf) != 1 || conf[0].Email != addr || !conf[0].ConfirmedAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("confirmed addresses %+v", conf)
		}
		if _, err := e.svc.Confirm(ctx, c.token); !errors.Is(err, addresses.ErrUsed) {
			t.Errorf("reuse: %v, want ErrUsed", err)
		}
		for _, tok := range []string{"", "short", strings.Repeat("A", 43), c.token + "x"} {
			if _, err := e.svc.Confirm(ctx, tok); !errors.Is(err, addresses.ErrUnknown) {
				t.Errorf("Confirm(%q): %v, want ErrUnknown", tok, err)
			}
		}
		_, err = e.svc.Resend(ctx, e.org, addr)
		wantStateError(t, "resend of a confirmed address", err, "already_confirmed")
		if _, err := e.svc.Add(ctx, e.org, addr); !errors.Is(err, store.ErrConflict) {
			t.Errorf("Add twice: %v, want ErrConflict", err)
		}

		other := newOrg(t, st, "other")
		if err := e.svc.Delete(ctx, other, addr); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Delete from another org: %v, want ErrNotFound", err)
		}
		if err := e.svc.Delete(ctx, e.org, "contact.desk@EXAMPLE.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Delete with another local-part case: %v; the local part is kept as given", err)
		}
		if err := e.svc.Delete(ctx, e.org, "Contact.Desk@EXAMPLE.com"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if as, _ := st.ListAddresses(ctx, e.org.ID); len(as) != 0 {
			t.Errorf("after Delete: %+v", as)
		}
		if k := e.kinds(t, e.org, addr); k != "address.added,address.confirmed,address.deleted" {
			t.Errorf("events %s", k)
		}
	})
}

func TestConfirmExpiry(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newEnv(t, st)
		tokens := map[string]string{}
		for _, addr := range []string{"late@example.com", "early@example.com"} {
			if _, err := e.svc.Add(ctx, e.org, addr); err != nil {
				t.Fatal(err)
			}
			tokens[addr] = e.lastMail(t, addr).token
		}
		e.clock.Set(t0.Add(ttl - time.Second))
		if _, err := e.svc.Confirm(ctx, tokens["early@example.com"]); err != nil {
			t.Errorf("Confirm just before expiry: %v", err)
		}
		e.clock.Set(t0.Add(ttl))
		if _, err := e.svc.Confirm(ctx, tokens["late@example.com"]); !errors.Is(err, addresses.ErrExpired) {
			t.Fatalf("Confirm at expiry: %v, want ErrExpired", err)
		}
		if s := e.status(t, "late@example.com"); s != addresses.Expired {
			t.Errorf("status %s, want expired", s)
		}
		if _, err := e.svc.Confirm(ctx, tokens["late@example.com"]); !errors.Is(err, addresses.ErrExpired) {
			t.Errorf("second Confirm: %v, want ErrExpired", err)
		}
		if k := e.kinds(t, e.org, "late@example.com"); k != "address.added,address.expired" {
			t.Errorf("events %s", k)
		}

		// Resend revives an expired address with a fresh token.
		a, err := e.svc.Resend(ctx, e.org, "late@example.com")
		if err != nil || a.Status != addresses.Pending {
			t.Fatalf("Resend after expiry: %+v, %v", a, err)
		}
		if _, err := e.svc.Confirm(ctx, e.lastMail(t, "late@example.com").token); err != nil {
			t.Errorf("Confirm of the new token: %v", err)
		}
	})
}

func TestResend(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newEnv(t, st)
		const addr = "ops@example.com"
		if _, err := e.svc.Add(ctx, e.org, addr); err != nil {
			t.Fatal(err)
		}
		var tokens []string
		tokens = append(tokens, e.lastMail(t, addr).token)
		for i := range resendLimit {
			e.clock.Set(t0.Add(time.Duration(i+1) * time.Minute))
			if _, err := e.svc.Resend(ctx, e.org, addr); err != nil {
				t.Fatalf("Resend %d: %v", i+1, err)
			}
			tokens = append(tokens, e.lastMail(t, addr).token)
		}
		// The limit counts resends (the email of Add is free) in the hour
		// from the first resend (t0+1m): refused until t0+61m, and the
		// error says exactly that.
		_, err := e.svc.Resend(ctx, e.org, addr)
		wantStateError(t, "resend over the limit", err, "rate_limited")
		var rl *addresses.RateLimitError
		if !errors.As(err, &rl) || rl.RetryAfter() != 59*time.Minute {
			t.Fatalf("over the limit: %v, want a RateLimitError with RetryAfter 59m", err)
		}
		for _, want := range []string{"resent 2 times", "within one hour of its first resend", "in 59m0s", "at 13:01:00 UTC"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("limit text %q lacks %q", err, want)
			}
		}
		e.clock.Set(t0.Add(time.Minute + time.Hour - time.Second))
		if _, err := e.svc.Resend(ctx, e.org, addr); !errors.As(err, &rl) || rl.RetryAfter() != time.Second {
			t.Errorf("a second before the window ends: %v, want RetryAfter 1s", err)
		}
		if n := len(e.smtp.Messages()); n != 1+resendLimit {
			t.Errorf("%d mails sent, want %d", n, 1+resendLimit)
		}
		for i, tok := range tokens[:len(tokens)-1] {
			if _, err := e.svc.Confirm(ctx, tok); !errors.Is(err, addresses.ErrUnknown) {
				t.Errorf("token %d after resend: %v, want ErrUnknown", i, err)
			}
		}

		e.clock.Set(t0.Add(time.Minute + time.Hour)) // the window began at the first resend
		if _, err := e.svc.Resend(ctx, e.org, addr); err != nil {
			t.Fatalf("Resend after the window: %v", err)
		}
		newest := e.lastMail(t, addr).token
		if _, err := e.svc.Confirm(ctx, tokens[len(tokens)-1]); !errors.Is(err, addresses.ErrUnknown) {
			t.Errorf("previous token: %v, want ErrUnknown", err)
		}
		if _, err := e.svc.Confirm(ctx, newest); err != nil {
			t.Errorf("newest token: %v", err)
		}
		other := newOrg(t, st, "other")
		if _, err := e.svc.Resend(ctx, other, addr); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Resend from another org: %v, want ErrNotFound", err)
		}
	})
}

// TestCheckChangesNothing: Check (what the confirmation page does on GET,
// which link scanners send) reports the token's state and leaves the
// address pending; only Confirm confirms.
func TestCheckChangesNothing(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newEnv(t, st)
		if _, err := e.svc.Add(ctx, e.org, "ops@example.com"); err != nil {
			t.Fatal(err)
		}
		tok := e.lastMail(t, "ops@example.com").token
		for range 3 {
			a, err := e.svc.Check(ctx, tok)
			if err != nil || a.Email != "ops@example.com" || a.Status != addresses.Pending {
				t.Fatalf("Check: %+v, %v", a, err)
			}
		}
		if a, err := st.AddressByEmail(ctx, e.org.ID, "ops@example.com"); err != nil || a.Status != addresses.Pending {
			t.Fatalf("after Check: %+v, %v; want pending", a, err)
		}
		for _, bad := range []string{"", "short", strings.Repeat("a", 43), strings.Repeat("a", 101)} {
			if _, err := e.svc.Check(ctx, bad); !errors.Is(err, addresses.ErrUnknown) {
				t.Errorf("Check(%q): %v, want ErrUnknown", bad, err)
			}
		}

		// Expired: reported, but the stored status is left to Confirm.
		e.clock.Add(ttl)
		if _, err := e.svc.Check(ctx, tok); !errors.Is(err, addresses.ErrExpired) {
			t.Errorf("Check after the ttl: %v, want ErrExpired", err)
		}
		if a, _ := st.AddressByEmail(ctx, e.org.ID, "ops@example.com"); a.Status != addresses.Pending {
			t.Errorf("Check wrote status %s", a.Status)
		}

		e.clock.Set(t0)
		if _, err := e.svc.Confirm(ctx, tok); err != nil {
			t.Fatalf("Confirm: %v", err)
		}
		if _, err := e.svc.Check(ctx, tok); !errors.Is(err, addresses.ErrUsed) {
			t.Errorf("Check after Confirm: %v, want ErrUsed", err)
		}
	})
}

// TestResendAndDeleteFollowTheDomain: a revoked domain's pending address
// gets no new confirmation mail, and deleting the domain removes its
// addresses, so re-adding it does not bring confirmations back.
func TestResendAndDeleteFollowTheDomain(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newEnv(t, st)
		e.addDomain(t, e.org, "gone.example", domains.Verified)
		if _, err := e.svc.Add(ctx, e.org, "a@gone.example"); err != nil {
			t.Fatal(err)
		}
		d, err := st.DomainByName(ctx, e.org.ID, "gone.example")
		if err != nil {
			t.Fatal(err)
		}
		revoked := d
		revoked.Status = string(domains.Revoked)
		if err := st.UpdateDomainCheck(ctx, d, revoked, nil); err != nil {
			t.Fatal(err)
		}
		before := len(e.smtp.Messages())
		_, err = e.svc.Resend(ctx, e.org, "a@gone.example")
		wantStateError(t, "Resend on a revoked domain", err, "domain_not_verified")
		if len(e.smtp.Messages()) != before {
			t.Error("a confirmation mail was sent for a revoked domain")
		}
		ev := store.Event{OrgID: e.org.ID, Subject: "domain:gone.example", Kind: "domain.deleted", At: store.At(time.Now())}
		if err := st.DeleteDomain(ctx, e.org.ID, "gone.example", ev); err != nil {
			t.Fatal(err)
		}
		if _, err := st.AddressByEmail(ctx, e.org.ID, "a@gone.example"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("address survived its domain: %v", err)
		}
	})
}

func TestAddNeedsVerifiedDomain(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newEnv(t, st)
		other := newOrg(t, st, "other")
		e.addDomain(t, e.org, "pending.example", domains.Pending)
		e.addDomain(t, e.org, "revoked.example", domains.Revoked)
		e.addDomain(t, e.org, "failing.example", domains.Failing)
		e.addDomain(t, other, "theirs.example", domains.Verified)
		tests := []struct {
			name  string
			email string
			ok    bool
		}{
			{name: "pending domain", email: "a@pending.example"},
			{name: "revoked domain", email: "a@revoked.example"},
			{name: "domain of another org", email: "a@theirs.example"},
			{name: "unknown domain", email: "a@nowhere.example"},
			{name: "failing domain may still send", email: "a@failing.example", ok: true},
			{name: "sandbox domain", email: "a@" + e.org.SandboxDomain, ok: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := len(e.smtp.Messages())
				_, err := e.svc.Add(ctx, e.org, tt.email)
				if tt.ok {
					if err != nil {
						t.Fatalf("Add: %v", err)
					}
					e.lastMail(t, tt.email)
					return
				}
				wantStateError(t, "Add", err, "domain_not_verified")
				if _, err := st.AddressByEmail(ctx, e.org.ID, tt.email); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("refused address stored: %v", err)
				}
				if len(e.smtp.Messages()) != before {
					t.Error("a mail was sent for a refused address")
				}
			})
		}
	})
}

func TestRelayFailureKeepsAddress(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newEnv(t, st)
		const addr = "sales@example.com"
		e.smtp.SetMailReply(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"})
		a, err := e.svc.Add(ctx, e.org, addr)
		var de *addresses.DeliveryError
		if !errors.As(err, &de) {
			t.Fatalf("Add with the relay refusing: %v, want *DeliveryError", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "saved as pending") || !strings.Contains(msg, "resend") {
			t.Errorf("DeliveryError says %q; want it to say the address is saved and to resend", msg)
		}
		if a.Email != addr || a.Status != addresses.Pending || e.status(t, addr) != addresses.Pending {
			t.Errorf("returned %+v, stored %s; want saved as pending", a, e.status(t, addr))
		}
		if len(e.smtp.Messages()) != 0 {
			t.Error("a message was recorded")
		}
		e.smtp.SetMailReply(nil)
		if _, err := e.svc.Resend(ctx, e.org, addr); err != nil {
			t.Fatalf("Resend once the relay is back: %v", err)
		}
		if _, err := e.svc.Confirm(ctx, e.lastMail(t, addr).token); err != nil {
			t.Errorf("Confirm: %v", err)
		}
	})
}

func TestNormalize(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	// domain of exactly n octets made of 63-octet labels and a short tail
	domainOf := func(n int) string {
		var labels []string
		for n > 64 {
			labels = append(labels, long63)
			n -= 64
		}
		return strings.Join(append(labels, strings.Repeat("b", n-4)+".com"), ".")
	}
	tests := []struct {
		name      string
		in        string
		addr, dom string
		bad       bool
	}{
		{name: "plain", in: "user@example.com", addr: "user@example.com", dom: "example.com"},
		{name: "domain lowercased, local part kept", in: "John.Doe@Example.COM", addr: "John.Doe@example.com", dom: "example.com"},
		{name: "IDN domain to A-label", in: "info@bücher.example", addr: "info@xn--bcher-kva.example", dom: "xn--bcher-kva.example"},
		{name: "quoted local part kept quoted", in: `"john doe"@example.com`, addr: `"john doe"@example.com`, dom: "example.com"},
		{name: "quoted local part with @", in: `"a@b"@example.com`, addr: `"a@b"@example.com`, dom: "example.com"},
		{name: "surrounding space", in: "  user@example.com ", addr: "user@example.com", dom: "example.com"},
		{name: "local part of 64", in: strings.Repeat("l", 64) + "@example.com", addr: strings.Repeat("l", 64) + "@example.com", dom: "example.com"},
		{name: "local part of 65", in: strings.Repeat("l", 65) + "@example.com", bad: true},
		{name: "254 octets", in: strings.Repeat("l", 64) + "@" + domainOf(189), addr: strings.Repeat("l", 64) + "@" + domainOf(189), dom: domainOf(189)},
		{name: "255 octets", in: strings.Repeat("l", 64) + "@" + domainOf(190), bad: true},
		{name: "display name", in: "Bob <bob@example.com>", bad: true},
		{name: "angle brackets", in: "<bob@example.com>", bad: true},
		{name: "address literal", in: "bob@[192.0.2.1]", bad: true},
		{name: "ip as domain", in: "bob@192.0.2.1", bad: true},
		{name: "no domain", in: "bob", bad: true},
		{name: "single-label domain", in: "bob@localhost", bad: true},
		{name: "empty", in: "", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, dom, err := addresses.Normalize(tt.in)
			if tt.bad {
				var fe *domains.FieldError
				if !errors.As(err, &fe) || fe.Field != "email" {
					t.Errorf("Normalize(%q) = %q, %v; want a FieldError on email", tt.in, addr, err)
				}
				return
			}
			if err != nil || addr != tt.addr || dom != tt.dom {
				t.Errorf("Normalize(%q) = %q, %q, %v; want %q, %q", tt.in, addr, dom, err, tt.addr, tt.dom)
			}
		})
	}
}
