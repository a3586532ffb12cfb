package smtpd_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/smtpd"
	"github.com/sendergate/sendergate/store"
)

// untrusted makes every address untrusted, as a remote client would be.
func untrusted() option {
	return withConfig(func(c *smtpd.Config) { c.TrustedNet = func(net.IP) bool { return false } })
}

func TestAuth(t *testing.T) {
	// The failing cases all come from 127.0.0.1 and count against the
	// failed-AUTH limit: keep them below five.
	f := testServer(t)
	tests := []struct {
		name     string
		client   sasl.Client
		wantCode int // 0: success
		wantEnh  smtp.EnhancedCode
	}{
		{name: "PLAIN", client: sasl.NewPlainClient("", appUser, appPass)},
		{name: "PLAIN with authzid equal to the username", client: sasl.NewPlainClient(appUser, appUser, appPass)},
		{name: "LOGIN", client: sasl.NewLoginClient(appUser, appPass)},
		{name: "bad password", client: sasl.NewPlainClient("", appUser, "wrong"), wantCode: 535, wantEnh: smtp.EnhancedCode{5, 7, 8}},
		{name: "unknown user", client: sasl.NewPlainClient("", "nobody@acme", appPass), wantCode: 535, wantEnh: smtp.EnhancedCode{5, 7, 8}},
		{name: "LOGIN bad password", client: sasl.NewLoginClient(appUser, "wrong"), wantCode: 535, wantEnh: smtp.EnhancedCode{5, 7, 8}},
		{name: "authzid of another account", client: sasl.NewPlainClient(otherUser, appUser, appPass), wantCode: 535, wantEnh: smtp.EnhancedCode{5, 7, 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.dial(t)
			if ok, mechs := c.Extension("AUTH"); !ok || mechs != "PLAIN LOGIN" {
				t.Errorf("EHLO AUTH = %v %q, want PLAIN LOGIN on loopback", ok, mechs)
			}
			err := c.Auth(tt.client)
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("AUTH: %v", err)
				}
				wantReply(t, mustSend(t, c, message("From: a@news.example.com")), 250, ok250)
				return
			}
			wantReply(t, asSMTPError(t, err), tt.wantCode, tt.wantEnh)
		})
	}
}

func TestAuthFailureLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := testServer(t, withConfig(func(c *smtpd.Config) { c.Registerer = reg }))
	// A new connection per attempt: go-smtp's client sends "*" after a
	// failure, which the server counts as a protocol error.
	for range 5 {
		err := f.dial(t).Auth(sasl.NewPlainClient("", appUser, "wrong"))
		wantReply(t, asSMTPError(t, err), 535, smtp.EnhancedCode{5, 7, 8})
	}
	err := f.dial(t).Auth(sasl.NewPlainClient("", appUser, appPass))
	wantReply(t, asSMTPError(t, err), 421, smtp.EnhancedCode{4, 7, 0})
	if got := metricValue(t, reg, "sendergate_smtpd_auth_failures_total", ""); got != 5 {
		t.Errorf("auth_failures_total = %v, want 5", got)
	}
}

func TestAuthNeedsTLS(t *testing.T) {
	f := testServer(t, untrusted())
	c := f.dial(t)
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH advertised on a plaintext connection from an untrusted address")
	}
	wantReply(t, asSMTPError(t, c.Auth(sasl.NewPlainClient("", appUser, appPass))), 538, smtp.EnhancedCode{5, 7, 11})

	t.Run("after STARTTLS", func(t *testing.T) {
		c, err := smtp.DialStartTLS(f.addr, f.client)
		if err != nil {
			t.Fatalf("STARTTLS: %v", err)
		}
		defer c.Close()
		if ok, mechs := c.Extension("AUTH"); !ok || mechs != "PLAIN LOGIN" {
			t.Errorf("EHLO AUTH after STARTTLS = %v %q, want PLAIN LOGIN", ok, mechs)
		}
		if err := c.Auth(sasl.NewLoginClient(appUser, appPass)); err != nil {
			t.Fatalf("AUTH after STARTTLS: %v", err)
		}
		wantReply(t, mustSend(t, c, message("From: a@news.example.com")), 250, ok250)
		if got := f.upstream.Messages(); !strings.Contains(string(got[len(got)-1].Data), "with ESMTPSA id") {
			t.Error("Received field does not record ESMTPSA")
		}
	})
	t.Run("implicit TLS", func(t *testing.T) {
		c, err := smtp.DialTLS(f.tlsAddr, f.client)
		if err != nil {
			t.Fatalf("DialTLS: %v", err)
		}
		defer c.Close()
		if err := c.Auth(sasl.NewPlainClient("", appUser, appPass)); err != nil {
			t.Fatalf("AUTH over implicit TLS: %v", err)
		}
		wantReply(t, mustSend(t, c, message("From: a@news.example.com")), 250, ok250)
	})
}

func TestAllowInsecureAuth(t *testing.T) {
	f := testServer(t, untrusted(), withConfig(func(c *smtpd.Config) { c.AllowInsecureAuth = true }))
	c := f.dial(t)
	if err := c.Auth(sasl.NewPlainClient("", appUser, appPass)); err != nil {
		t.Fatalf("AUTH with AllowInsecureAuth: %v", err)
	}
}

func TestMailBeforeAuth(t *testing.T) {
	f := testServer(t)
	c := f.dial(t)
	wantReply(t, asSMTPError(t, c.Mail("a@news.example.com", nil)), 530, smtp.EnhancedCode{5, 7, 0})
	// A transaction that ends at MAIL still gets its log line.
	if logs := f.logs.String(); !strings.Contains(logs, "msg=transaction") || !strings.Contains(logs, "code=530") ||
		!strings.Contains(logs, "mail_from=a@news.example.com") {
		t.Errorf("no transaction line for the refused MAIL:\n%s", logs)
	}
}

func TestPolicyNotLoaded(t *testing.T) {
	f := testServer(t, withoutSnapshot())
	err := f.dial(t).Auth(sasl.NewPlainClient("", appUser, appPass))
	wantReply(t, asSMTPError(t, err), 451, smtp.EnhancedCode{4, 3, 0})

	f.reload(t)
	c := f.authenticated(t)
	wantReply(t, mustSend(t, c, message("From: a@news.example.com")), 250, ok250)
}

func TestLimits(t *testing.T) {
	f, c := testServerAuthenticated(t) // MaxRecipients 3, MaxMessageBytes 256 KiB
	t.Run("too many recipients", func(t *testing.T) {
		_, err := send(c, message("From: a@news.example.com"), "a@example.net", "b@example.net", "c@example.net", "d@example.net")
		wantReply(t, asSMTPError(t, err), 452, smtp.EnhancedCode{4, 5, 3})
		if err := c.Reset(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		big := message("From: a@news.example.com") + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 5000)
		wantReply(t, mustSend(t, c, big), 552, smtp.EnhancedCode{5, 3, 4})
	})
	t.Run("header line over 998 octets", func(t *testing.T) {
		long := message("From: a@news.example.com", "X-Long: "+strings.Repeat("x", 1000))
		reply := mustSend(t, c, long)
		wantReply(t, reply, 550, smtp.EnhancedCode{5, 6, 0})
		if !strings.Contains(reply.Message, "998") {
			t.Errorf("reply %q does not explain the limit", reply.Message)
		}
	})
	if n := len(f.upstream.Messages()); n != 0 {
		t.Errorf("upstream got %d messages, want 0", n)
	}
	// The session is still usable.
	wantReply(t, mustSend(t, c, message("From: a@news.example.com")), 250, ok250)
}

// metricValue returns the value of the counter or gauge name whose labels
// contain labels ("k=v"; empty: the unlabelled metric).
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var pairs []string
			for _, lp := range m.GetLabel() {
				pairs = append(pairs, lp.GetName()+"="+lp.GetValue())
			}
			if strings.Join(pairs, ",") != label {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}

func TestAccountDeletedDuringSession(t *testing.T) {
	f, c := testServerAuthenticated(t)
	if err := f.store.DeleteAccount(t.Context(), f.acme.ID, f.app.Name); err != nil {
		t.Fatal(err)
	}
	f.reload(t)
	wantReply(t, asSMTPError(t, c.Mail("a@client.test", nil)), 530, smtp.EnhancedCode{5, 7, 0})
}

func TestPasswordRotationEndsSessions(t *testing.T) {
	f, c := testServerAuthenticated(t)
	wantReply(t, mustSend(t, c, message("From: a@news.example.com")), 250, ok250)
	const newPass = "rotated-password-0123456789abcdef"
	if err := f.store.SetAccountPassword(t.Context(), f.acme.ID, f.app.Name, policy.HashPassword(newPass), store.At(time.Now())); err != nil {
		t.Fatal(err)
	}
	f.reload(t)
	// The session authorized by the old password ends with it.
	reply := asSMTPError(t, c.Mail("app@client.test", nil))
	wantReply(t, reply, 535, smtp.EnhancedCode{5, 7, 8})
	if !strings.Contains(reply.Message, "password was changed") {
		t.Errorf("reply %q does not say why", reply.Message)
	}
	// The old password fails, the new one works.
	wantSMTPCode(t, f.dial(t).Auth(sasl.NewPlainClient("", appUser, appPass)), 535, smtp.EnhancedCode{5, 7, 8})
	fresh := f.dial(t)
	if err := fresh.Auth(sasl.NewPlainClient("", appUser, newPass)); err != nil {
		t.Fatalf("AUTH with the new password: %v", err)
	}
	wantReply(t, mustSend(t, fresh, message("From: a@news.example.com")), 250, ok250)
}

func TestAuthFailuresPerConnection(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := testServer(t, withConfig(func(c *smtpd.Config) { c.Registerer = reg }))
	// One wrong password tried with LOGIN, then PLAIN, three times over
	// (what swaks does when it tries each mechanism) costs one failure.
	c := dialRaw(t, f.addr)
	c.ehlo()
	for range 3 {
		if code, msg := c.authLogin(appUser, "wrong"); code != 535 {
			t.Fatalf("AUTH LOGIN: %d %s", code, msg)
		}
		if code, msg := c.authPlain(appUser, "wrong"); code != 535 {
			t.Fatalf("AUTH PLAIN: %d %s", code, msg)
		}
	}
	if code, msg := c.authPlain(appUser, appPass); code != 235 {
		t.Fatalf("AUTH after six tries of one password: %d %s, want 235 (one failure counted)", code, msg)
	}
	if got := metricValue(t, reg, "sendergate_smtpd_auth_failures_total", ""); got != 6 {
		t.Errorf("auth_failures_total = %v, want every attempt (6)", got)
	}
	// Each different password counts: four more make five, and then even
	// the right password is refused, on this connection and the next.
	c = dialRaw(t, f.addr)
	c.ehlo()
	for i := range 4 {
		if code, msg := c.authPlain(appUser, fmt.Sprintf("guess-%d", i)); code != 535 {
			t.Fatalf("guess %d: %d %s", i, code, msg)
		}
	}
	if code, msg := c.authPlain(appUser, appPass); code != 421 || !strings.HasPrefix(msg, "4.7.0") {
		t.Fatalf("right password from a locked address: %d %s, want 421 4.7.0", code, msg)
	}
	wantSMTPCode(t, f.dial(t).Auth(sasl.NewPlainClient("", appUser, appPass)), 421, smtp.EnhancedCode{4, 7, 0})
}
