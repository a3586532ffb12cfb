//go:build postfix

package milter_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/internal/gatelisten"
	"github.com/sendergate/sendergate/internal/postfixtest"
	"github.com/sendergate/sendergate/limits"
	"github.com/sendergate/sendergate/milter"
	"github.com/sendergate/sendergate/relay/relaytest"
)

// TestPostfixLimits: the sending limit applies to mail relayed by a real
// Postfix. The chain is the one of docs/postfix.md (milter for signing,
// policy service for the envelope sender, LimitRecipients off beside the
// milter, so each recipient counts once); with the account at 3
// recipients per hour, Postfix answers the fourth RCPT with the milter's
// 451 4.7.0, a message whose second recipient does not fit goes to its
// first alone, and the sink receives what was accepted.
func TestPostfixLimits(t *testing.T) {
	postfixtest.NeedPostfix(t)
	f := newFixture(t, dkim.RSA2048)
	f.setAccountLimits(t, limits.Values{limits.Hour: 3})
	stage := f.limited(limits.Defaults{})
	g := &rig{f: f, sink: relaytest.NewServer(t), servers: startZones(t, f)}
	dir, err := os.MkdirTemp("", "sendergate-milter-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	g.socket = filepath.Join(dir, "milter.sock")
	ml, err := gatelisten.Listen("unix:"+g.socket, gatelisten.Options{Name: "milter", Group: "postfix"})
	must(t, err)
	g.milter = milter.NewMilter(milter.MilterConfig{}, stage)
	go g.milter.Serve(ml)
	t.Cleanup(func() { g.milter.Close() })
	peers, err := gatelisten.ParsePeers([]string{"127.0.0.1"})
	must(t, err)
	pl, err := gatelisten.Listen("127.0.0.1:0", gatelisten.Options{Name: "policyd", Peers: peers})
	must(t, err)
	p := milter.NewPolicyd(milter.PolicydConfig{}, stage)
	go p.Serve(pl)
	t.Cleanup(func() { p.Close() })
	g.pf = startPostfix(t, g.sink.Addr, g.socket, pl.Addr().String())

	c := g.dial(t)
	for i := range 2 {
		must(t, send(c, "news@example.com", "news@example.com", fmt.Sprintf("within %d", i)))
	}
	// Two recipients, one left: the first is accepted, the second deferred.
	must(t, c.Mail("news@example.com", nil))
	must(t, c.Rcpt("one@dest.example", nil))
	wantSMTPError(t, c.Rcpt("two@dest.example", nil), 4, "451 4.7.0 sending limit reached for account app@acme: 3 recipients per hour; it frees up at ")
	w, err := c.Data()
	must(t, err)
	fmt.Fprintf(w, "From: news@example.com\r\nTo: one@dest.example, two@dest.example\r\nSubject: partly\r\nDate: %s\r\n\r\nhi\r\n", time.Now().Format(time.RFC1123Z))
	must(t, w.Close())

	err = send(g.dial(t), "news@example.com", "news@example.com", "over")
	wantSMTPError(t, err, 4, "451 4.7.0 sending limit reached for account app@acme: 3 recipients per hour")

	// Postfix delivers from its queue in no set order: find each by subject.
	msgs := g.waitMessages(t, 3)
	bySubject := func(subject string) relaytest.Received {
		t.Helper()
		for _, m := range msgs {
			if bytes.Contains(m.Data, []byte("Subject: "+subject+"\r\n")) {
				return m
			}
		}
		t.Fatalf("no message %q among the %d delivered", subject, len(msgs))
		return relaytest.Received{}
	}
	g.wantDelivered(t, bySubject("within 0"), "within 0", "example.com", "@rp.example.com")
	if partly := bySubject("partly"); len(partly.To) != 1 || partly.To[0] != "one@dest.example" {
		t.Errorf("the partly accepted message went to %v, want one@dest.example only", partly.To)
	}
}
