package smtpd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/gate"
	"github.com/sendergate/sendergate/internal/clocktest"
	"github.com/sendergate/sendergate/limits"
	"github.com/sendergate/sendergate/smtpd"
	"github.com/sendergate/sendergate/store"
)

// withLimits gives the message stage a sending limiter on the fixture's
// store, reading clock, with the config defaults d.
func withLimits(clock *clocktest.Clock, d limits.Defaults) option {
	return func(o *fixtureOptions) {
		o.gate = func(f *fixture, g *gate.Options) {
			g.Now = clock.Now
			g.Limiter = limits.New(f.store, limits.Options{Now: clock.Now})
			g.Limits = d
		}
	}
}

// setLimits stores limits for an account of acme and reloads the policy.
func (f *fixture) setLimits(t *testing.T, a store.Account, v limits.Values) {
	t.Helper()
	now := store.At(time.Now())
	row := store.LimitRow{OrgID: a.OrgID, AccountID: a.ID, PerMinute: v[limits.Minute], PerHour: v[limits.Hour], PerDay: v[limits.Day], UpdatedAt: now}
	if err := f.store.SetLimits(context.Background(), row, store.Event{OrgID: a.OrgID, Subject: "limits", Kind: "limits.changed", At: now}); err != nil {
		t.Fatal(err)
	}
	f.reload(t)
}

var fromNews = message("From: news@news.example.com")

// TestRcptPastTheLimit: with app at 5 recipients per minute, the sixth
// RCPT of a transaction gets 451 4.7.0 naming the scope, the window and
// when it frees up; the five before it stay accepted and are delivered.
// Another account of the organization is not affected, and after the
// minute app sends again.
func TestRcptPastTheLimit(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 3, 14, 14, 9, 10, 0, time.UTC))
	f, c := testServerAuthenticated(t, withLimits(clock, limits.Defaults{}), withConfig(func(c *smtpd.Config) { c.MaxRecipients = 10 }))
	f.setLimits(t, f.app, limits.Values{limits.Minute: 5})

	if err := c.Mail("app@client.test", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := c.Rcpt(fmt.Sprintf("r%d@example.net", i), nil); err != nil {
			t.Fatalf("RCPT %d: %v", i+1, err)
		}
	}
	reply := asSMTPError(t, c.Rcpt("r5@example.net", nil))
	wantReply(t, reply, 451, smtp.EnhancedCode{4, 7, 0})
	want := "sending limit reached for account app@acme: 5 recipients per minute; it frees up at 2026-03-14 14:10:00 UTC (in 50s)"
	if reply.Message != want {
		t.Errorf("RCPT 6: %q, want %q", reply.Message, want)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, fromNews)
	if err := w.Close(); err != nil {
		t.Fatalf("DATA after a deferred RCPT: %v", err)
	}
	msgs := f.upstream.Messages()
	if len(msgs) != 1 || len(msgs[0].To) != 5 {
		t.Fatalf("upstream got %d messages (%v), want one to the 5 accepted recipients", len(msgs), msgs)
	}

	o := f.dial(t)
	if err := o.Auth(sasl.NewPlainClient("", otherUser, otherPass)); err != nil {
		t.Fatal(err)
	}
	wantReply(t, mustSend(t, o, fromNews, "a@example.net", "b@example.net", "c@example.net"), 250, smtp.EnhancedCode{2, 0, 0})

	if _, err := send(c, fromNews); err == nil {
		t.Fatal("app sent again within the minute")
	} else {
		wantReply(t, asSMTPError(t, err), 451, smtp.EnhancedCode{4, 7, 0})
	}
	c.Reset()
	clock.Set(time.Date(2026, 3, 14, 14, 10, 0, 0, time.UTC))
	wantReply(t, mustSend(t, c, fromNews), 250, smtp.EnhancedCode{2, 0, 0})
}

// TestUnfinishedTransactionsGiveBack: recipients of a transaction whose
// DATA is refused (by the policy or the upstream), that is reset, or
// whose client goes away count against no limit. Without giving them back
// the second half of each step would be refused.
func TestUnfinishedTransactionsGiveBack(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 3, 14, 14, 9, 10, 0, time.UTC))
	f, c := testServerAuthenticated(t, withLimits(clock, limits.Defaults{Account: limits.Values{limits.Hour: 2}}))
	two := []string{"a@example.net", "b@example.net"}

	wantReply(t, mustSend(t, c, message("From: x@pending.example"), two...), 550, smtp.EnhancedCode{5, 7, 1})
	f.upstream.SetDataReply(&smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "upstream full"})
	wantReply(t, mustSend(t, c, fromNews, two...), 452, smtp.EnhancedCode{4, 3, 1})
	f.upstream.SetDataReply(nil)

	if err := c.Mail("app@client.test", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range two {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}

	gone := f.authenticated(t)
	if err := gone.Mail("app@client.test", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range two {
		if err := gone.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	gone.Close() // no QUIT, no RSET
	// The server notices the closed connection on its next read.
	deadline := time.Now().Add(10 * time.Second)
	for {
		reply, err := send(c, fromNews, two...)
		if err == nil {
			wantReply(t, reply, 250, smtp.EnhancedCode{2, 0, 0})
			break
		}
		c.Reset()
		if time.Now().After(deadline) {
			t.Fatalf("the recipients of refused, reset and abandoned transactions still count: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := send(c, fromNews); err == nil {
		t.Error("a third recipient in the hour was accepted")
	}
}
