package milter_test

import (
	"context"
	"strings"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/gate"
	"github.com/sendergate/sendergate/limits"
	"github.com/sendergate/sendergate/milter"
	"github.com/sendergate/sendergate/store"
)

// limited returns a gate on f's policy with a sending limiter whose
// config defaults are d.
func (f *fixture) limited(d limits.Defaults) *gate.Gate {
	return gate.New(f.pol, f.st, gate.Options{SandboxLimit: 100, Limiter: limits.New(f.st, limits.Options{}), Limits: d})
}

// setAccountLimits stores limits for the test account and reloads.
func (f *fixture) setAccountLimits(t *testing.T, v limits.Values) {
	t.Helper()
	ctx := context.Background()
	snap, err := f.pol.Current()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := snap.Account(testUser)
	now := store.At(time.Now())
	row := store.LimitRow{OrgID: a.OrgID, AccountID: a.ID, PerMinute: v[limits.Minute], PerHour: v[limits.Hour], PerDay: v[limits.Day], UpdatedAt: now}
	if err := f.st.SetLimits(ctx, row, store.Event{OrgID: a.OrgID, Subject: "limits", Kind: "limits.changed", At: now}); err != nil {
		t.Fatal(err)
	}
	if err := f.pol.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMilterRcptPastTheLimit: past the account's limit the milter answers
// RCPT 451 4.7.0, which the MTA gives its client for that recipient.
func TestMilterRcptPastTheLimit(t *testing.T) {
	f := newFixture(t, dkim.Ed25519)
	f.setAccountLimits(t, limits.Values{limits.Minute: 2})
	c := dialMilter(t, startMilter(t, milter.MilterConfig{}, f.limited(limits.Defaults{})))
	m := testMessage{user: testUser, from: "news@example.com", body: "hi\r\n"}
	for range 2 {
		mods, act := c.send(t, m)
		wantSigned(t, f, m, mods, act, "example.com", "@rp.example.com")
	}
	_, act := c.send(t, m)
	wantReply(t, act, 451, "4.7.0 sending limit reached for account app@acme: 2 recipients per minute; it frees up at ")
	// Unauthenticated mail is not counted (nor limited).
	mods, act := c.send(t, testMessage{from: "x@elsewhere.example", body: "x\r\n"})
	if act.Code != gomilter.ActAccept || len(mods) != 0 {
		t.Errorf("unauthenticated: %c, %d modifications; want accepted untouched", act.Code, len(mods))
	}
}

// TestMilterGivesBackUnfinished: the recipients of a message refused at
// end of data, or aborted, count against no limit; only the accepted
// message does. Without giving them back the third message would be
// deferred.
func TestMilterGivesBackUnfinished(t *testing.T) {
	f := newFixture(t, dkim.Ed25519)
	f.setAccountLimits(t, limits.Values{limits.Hour: 1})
	c := dialMilter(t, startMilter(t, milter.MilterConfig{}, f.limited(limits.Defaults{})))
	_, act := c.send(t, testMessage{user: testUser, from: "ceo@bank.example", body: "x\r\n"})
	wantReply(t, act, 550, "5.7.1 domain bank.example")

	if err := c.s.Macros(gomilter.CodeMail, "{auth_authen}", testUser); err != nil {
		t.Fatal(err)
	}
	if _, err := c.s.Mail("a@client.example", nil); err != nil {
		t.Fatal(err)
	}
	if act, err := c.s.Rcpt("rcpt@dest.example", nil); err != nil || act.Code != gomilter.ActContinue {
		t.Fatalf("RCPT before the abort: %v %v", act, err)
	}
	if err := c.s.Abort(); err != nil {
		t.Fatal(err)
	}

	m := testMessage{user: testUser, from: "news@example.com", body: "hi\r\n"}
	mods, act := c.send(t, m)
	wantSigned(t, f, m, mods, act, "example.com", "@rp.example.com")
	_, act = c.send(t, m)
	wantReply(t, act, 451, "4.7.0 sending limit reached for account app@acme: 1 recipient per hour")
}

// TestPolicydLimits: alone in the chain the policy service counts each
// recipient it permits at RCPT and defers past the limit with an
// "451 4.7.0 text" action; requests of other stages do not count. Beside
// the milter (LimitRecipients off) it leaves the counting to the milter.
func TestPolicydLimits(t *testing.T) {
	f := newFixture(t, dkim.Ed25519)
	f.setAccountLimits(t, limits.Values{limits.Day: 2})
	g := f.limited(limits.Defaults{})
	p := dialPolicyd(t, startPolicyd(t, milter.PolicydConfig{LimitRecipients: true}, g))
	rcpt := policyRequest(testUser, "news@example.com")
	data := strings.Replace(rcpt, "protocol_state=RCPT", "protocol_state=DATA", 1)
	for i, step := range []struct{ req, want string }{
		{rcpt, "DUNNO"}, {data, "DUNNO"}, {rcpt, "DUNNO"}, {data, "DUNNO"},
		{rcpt, "451 4.7.0 sending limit reached for account app@acme: 2 recipients per day; it frees up at "},
		{policyRequest(testUser, "ceo@bank.example"), "REJECT 5.7.1 domain bank.example"}, // the sender is checked first
	} {
		if got := p.ask(t, step.req); !strings.HasPrefix(got, step.want) {
			t.Errorf("request %d: action %q, want %q...", i+1, got, step.want)
		}
	}
	beside := dialPolicyd(t, startPolicyd(t, milter.PolicydConfig{}, g))
	for range 3 {
		if got := beside.ask(t, rcpt); got != "DUNNO" {
			t.Errorf("with LimitRecipients off: %q, want DUNNO", got)
		}
	}
}
