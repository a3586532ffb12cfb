package milter_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/milter"
)

// policyRequest formats a request as Postfix sends it at RCPT.
func policyRequest(user, sender string) string {
	return "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n" +
		"client_address=127.0.0.1\nclient_name=localhost\nhelo_name=client.example\n" +
		"queue_id=\nsender=" + sender + "\nrecipient=rcpt@dest.example\nrecipient_count=0\n" +
		"sasl_method=PLAIN\nsasl_username=" + user + "\nsasl_sender=\nsize=0\ninstance=1.2.3\n\n"
}

type policyClient struct {
	c net.Conn
	r *bufio.Reader
}

func dialPolicyd(t testing.TB, addr string) *policyClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &policyClient{c: c, r: bufio.NewReader(c)}
}

// ask sends one raw request and returns the reply's action.
func (p *policyClient) ask(t testing.TB, raw string) string {
	t.Helper()
	if _, err := io.WriteString(p.c, raw); err != nil {
		t.Fatalf("write request: %v", err)
	}
	action, err := p.readReply()
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	return action
}

// readReply reads "action=...\n\n" and returns what follows "action=".
func (p *policyClient) readReply() (string, error) {
	line, err := p.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	blank, err := p.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if blank != "\n" {
		return "", fmt.Errorf("reply not ended by an empty line: %q %q", line, blank)
	}
	action, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "action=")
	if !ok {
		return "", fmt.Errorf("reply %q has no action", line)
	}
	return action, nil
}

func TestPolicydDecisions(t *testing.T) {
	f := newFixture(t, dkim.Ed25519)
	tests := []struct {
		name            string
		unauthenticated string
		user, sender    string
		want            string
	}{
		{name: "allowed", user: testUser, sender: "news@example.com", want: "DUNNO"},
		{name: "allowed IDN case", user: testUser, sender: "News@EXAMPLE.com.", want: "DUNNO"},
		{name: "sandbox", user: testUser, sender: "x@" + testSandbox, want: "DUNNO"},
		{name: "unknown domain", user: testUser, sender: "ceo@bank.example", want: "REJECT 5.7.1 domain bank.example is not a sending domain of your organization; add and verify it first"},
		{name: "subdomain is not parent", user: testUser, sender: "a@sub.example.com", want: "REJECT 5.7.1 domain sub.example.com is not a sending domain of your organization; add and verify it first"},
		{name: "pending", user: testUser, sender: "a@pending.example", want: "REJECT 5.7.1 domain pending.example is not verified yet; publish its DNS records and verify it"},
		{name: "not granted", user: testUser, sender: "a@restricted.example", want: "REJECT 5.7.1 domain restricted.example is not granted to this SMTP account; grant it in the domain's access settings"},
		{name: "null sender", user: testUser, sender: "", want: "REJECT 5.7.1 the null sender <> is not allowed for authenticated mail; use an address of your domain"},
		{name: "no domain", user: testUser, sender: "postmaster", want: `REJECT 5.7.1 sender address "postmaster" cannot be authorized: it has no valid domain`},
		{name: "unknown user", user: "app", sender: "news@example.com", want: `REJECT 5.7.1 SMTP account "app" is not known to sendergate (removed, or never created)`},
		{name: "unauthenticated dunno", unauthenticated: "dunno", sender: "ceo@bank.example", want: "DUNNO"},
		{name: "unauthenticated reject", unauthenticated: "reject", sender: "news@example.com", want: "REJECT 5.7.1 authentication required"},
	}
	// One connection per configuration: the requests share it.
	clients := map[string]*policyClient{}
	for _, u := range []string{"", "dunno", "reject"} {
		clients[u] = dialPolicyd(t, startPolicyd(t, milter.PolicydConfig{Unauthenticated: u}, f.engine))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clients[tt.unauthenticated]
			if got := c.ask(t, policyRequest(tt.user, tt.sender)); got != tt.want {
				t.Errorf("action = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPolicydManyRequestsOneConnection(t *testing.T) {
	f := newFixture(t, dkim.Ed25519)
	c := dialPolicyd(t, startPolicyd(t, milter.PolicydConfig{}, f.engine))
	// Pipelined: three requests in one write, three replies in order.
	raw := policyRequest(testUser, "a@example.com") + policyRequest(testUser, "a@bank.example") + policyRequest(testUser, "b@example.com")
	if _, err := io.WriteString(c.c, raw); err != nil {
		t.Fatal(err)
	}
	want := []string{"DUNNO", "REJECT 5.7.1 domain bank.example", "DUNNO"}
	for i, w := range want {
		got, err := c.readReply()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if !strings.HasPrefix(got, w) {
			t.Errorf("reply %d = %q, want prefix %q", i, got, w)
		}
	}
	// CRLF line endings are accepted too.
	crlf := strings.ReplaceAll(policyRequest(testUser, "c@example.com"), "\n", "\r\n")
	if got := c.ask(t, crlf); got != "DUNNO" {
		t.Errorf("CRLF request: %q", got)
	}
}

func TestPolicydNotLoaded(t *testing.T) {
	c := dialPolicyd(t, startPolicyd(t, milter.PolicydConfig{}, notLoaded(t)))
	want := "DEFER_IF_PERMIT 4.3.0 authorization data not loaded yet, try again later"
	if got := c.ask(t, policyRequest(testUser, "a@example.com")); got != want {
		t.Errorf("action = %q, want %q", got, want)
	}
	// Unauthenticated requests need no data and still pass.
	if got := c.ask(t, policyRequest("", "a@example.com")); got != "DUNNO" {
		t.Errorf("unauthenticated action = %q, want DUNNO", got)
	}
}

func TestPolicydRefusesBadInput(t *testing.T) {
	f := newFixture(t, dkim.Ed25519)
	tests := []struct {
		name string
		raw  string
		want string // prefix of the action before the connection closes
	}{
		{name: "line too long", raw: "request=smtpd_access_policy\nsender=" + strings.Repeat("a", 3000) + "@example.com\n\n", want: "DEFER_IF_PERMIT 4.3.0 attribute 2: policyd: attribute line too long"},
		{name: "too many attributes", raw: strings.Repeat("x=y\n", 65) + "\n", want: "DEFER_IF_PERMIT 4.3.0 policyd: request has too many"},
		{name: "no equals sign", raw: "request=smtpd_access_policy\ngarbage\n\n", want: "DEFER_IF_PERMIT 4.3.0 attribute 2 has no name=value form"},
		{name: "duplicate sasl_username", raw: "request=smtpd_access_policy\nsasl_username=\nsasl_username=app@acme\n\n", want: "DEFER_IF_PERMIT 4.3.0 attribute sasl_username given twice"},
	}
	addr := startPolicyd(t, milter.PolicydConfig{}, f.engine)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialPolicyd(t, addr)
			if got := c.ask(t, policyRequest(testUser, "a@example.com")); got != "DUNNO" {
				t.Fatalf("first request: %q", got)
			}
			got := c.ask(t, tt.raw)
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("action = %q, want prefix %q", got, tt.want)
			}
			if _, err := c.r.ReadByte(); err != io.EOF {
				t.Errorf("connection still open after refused input (read err %v)", err)
			}
		})
	}
}

func TestPolicydIdleTimeout(t *testing.T) {
	f := newFixture(t, dkim.Ed25519)
	c := dialPolicyd(t, startPolicyd(t, milter.PolicydConfig{IdleTimeout: 50 * time.Millisecond}, f.engine))
	io.WriteString(c.c, "request=smtpd_access_policy\n") // and then nothing
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Errorf("idle connection not closed by the server: %v", err)
	}
}

// BenchmarkPolicyd pipelines requests from one client over one loopback
// connection and reports requests per second.
func BenchmarkPolicyd(b *testing.B) {
	f := newFixture(b, dkim.Ed25519)
	c := dialPolicyd(b, startPolicyd(b, milter.PolicydConfig{}, f.engine))
	c.c.SetDeadline(time.Time{})
	reqs := [2]string{policyRequest(testUser, "news@example.com"), policyRequest(testUser, "ceo@bank.example")}
	errc := make(chan error, 1)
	b.ResetTimer()
	go func() {
		w := bufio.NewWriter(c.c)
		for i := 0; i < b.N; i++ {
			if _, err := w.WriteString(reqs[i%2]); err != nil {
				errc <- err
				return
			}
		}
		errc <- w.Flush()
	}()
	for i := 0; i < b.N; i++ {
		action, err := c.readReply()
		if err != nil {
			b.Fatalf("reply %d: %v", i, err)
		}
		if (i%2 == 0) != (action == "DUNNO") {
			b.Fatalf("reply %d: %q", i, action)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func TestPolicydMetrics(t *testing.T) {
	f := newFixture(t, dkim.Ed25519)
	reg := prometheus.NewRegistry()
	c := dialPolicyd(t, startPolicyd(t, milter.PolicydConfig{Registerer: reg}, f.engine))
	c.ask(t, policyRequest(testUser, "a@example.com"))
	c.ask(t, policyRequest(testUser, "a@bank.example"))
	c.ask(t, policyRequest(testUser, "b@example.com"))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range families {
		if mf.GetName() != "sendergate_policyd_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if got["dunno"] != 2 || got["reject"] != 1 {
		t.Errorf("requests_total = %v, want dunno 2, reject 1", got)
	}
}
