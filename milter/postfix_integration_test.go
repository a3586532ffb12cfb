//go:build postfix

package milter_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/internal/gatelisten"
	"github.com/sendergate/sendergate/internal/postfixtest"
	"github.com/sendergate/sendergate/milter"
	"github.com/sendergate/sendergate/relay/relaytest"
	"github.com/sendergate/sendergate/zone"
)

// The SASL login the client types; Cyrus splits it into user "app" and
// realm "acme", and Postfix hands sendergate the whole string.
const (
	saslRealm    = "acme"
	saslUser     = "app"
	saslPassword = "s3cret-Pw"
)

// startPostfix starts a private Postfix (internal/postfixtest) as
// docs/postfix.md configures it: the test's SASL account, the milter on
// a unix socket (group postfix: smtpd runs as postfix, not chrooted), the
// policy service on TCP (admitted by policyd.peers) checking the envelope
// sender before any permit_* restriction, and relayhost the sink.
func startPostfix(t *testing.T, sinkAddr, milterSocket, policydAddr string) *postfixtest.Instance {
	t.Helper()
	return postfixtest.Start(t, postfixtest.Options{
		Relayhost: "[127.0.0.1]:" + port(sinkAddr),
		Milter:    "unix:" + milterSocket,
		Policy:    "inet:127.0.0.1:" + port(policydAddr),
		SASL:      []postfixtest.Account{{User: saslUser, Realm: saslRealm, Password: saslPassword}},
	})
}

// port is the port of a host:port address.
func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dnsLookup returns a LookupTXT that asks the zone servers over UDP: the
// server whose zone suffix matches the name.
func dnsLookup(servers map[string]string) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		name = strings.TrimSuffix(name, ".")
		for suffix, addr := range servers {
			if name != suffix && !strings.HasSuffix(name, "."+suffix) {
				continue
			}
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
			in, err := dns.Exchange(m, addr)
			if err != nil {
				return nil, err
			}
			var out []string
			for _, rr := range in.Answer {
				if txt, ok := rr.(*dns.TXT); ok {
					out = append(out, strings.Join(txt.Txt, ""))
				}
			}
			return out, nil
		}
		return nil, fmt.Errorf("no test DNS server for %s", name)
	}
}

// dkimpyScript verifies the message on stdin with dkimpy, fetching keys
// with dig from the zone servers named in DNS_SERVERS (suffix=port,...).
const dkimpyScript = `
import os, re, subprocess, sys, dkim
servers = dict(kv.split("=") for kv in os.environ["DNS_SERVERS"].split(","))
def dnsfunc(name, timeout=5):
    n = name.decode().rstrip(".")
    for suffix, port in servers.items():
        if n == suffix or n.endswith("." + suffix):
            out = subprocess.run(["dig", "+short", "-p", port, "@127.0.0.1", "TXT", n],
                                 capture_output=True, text=True, check=True).stdout.strip()
            if not out:
                return None
            return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', out.splitlines()[0])).encode()
    return None
print("pass" if dkim.verify(sys.stdin.buffer.read(), dnsfunc=dnsfunc) else "fail")
`

// dkimpy runs dkimpyScript with the interpreter of dkimverify.
func dkimpy(t *testing.T, message []byte, servers map[string]string) string {
	t.Helper()
	path := postfixtest.NeedTool(t, "dkimverify")
	postfixtest.NeedTool(t, "dig")
	head, err := os.ReadFile(path)
	must(t, err)
	first, _, _ := strings.Cut(string(head), "\n")
	python := strings.Fields(strings.TrimPrefix(first, "#!"))[0]
	var env []string
	for suffix, addr := range servers {
		_, port, _ := net.SplitHostPort(addr)
		env = append(env, suffix+"="+port)
	}
	cmd := exec.Command(python, "-c", dkimpyScript)
	cmd.Env = append(os.Environ(), "DNS_SERVERS="+strings.Join(env, ","))
	cmd.Stdin = bytes.NewReader(message)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// startZones serves the DKIM keys over real DNS: sendergate's zone (the
// sandbox domain's key) and a stand-in for the customer's DNS (example.com).
func startZones(t *testing.T, f *fixture) map[string]string {
	t.Helper()
	servers := map[string]string{}
	for _, z := range []struct{ zone, name string }{
		{testZone, testSelector + "._domainkey." + testSandbox},
		{"example.com", testSelector + "._domainkey.example.com"},
	} {
		s, err := zone.New(zone.Config{Zone: z.zone, Nameservers: []string{"ns1." + z.zone}})
		must(t, err)
		s.Update(1, []dns.RR{zone.TXT(z.name, 60, f.txt)})
		must(t, s.Start("127.0.0.1:0"))
		t.Cleanup(func() { s.Shutdown(context.Background()) })
		servers[z.zone] = s.UDPAddr().String()
	}
	return servers
}

// rig is everything one Postfix test talks to.
type rig struct {
	f       *fixture
	sink    *relaytest.Server
	milter  *milter.MilterServer
	socket  string // the milter's unix socket
	pf      *postfixtest.Instance
	servers map[string]string // DNS zone suffix -> server address
}

// startRig starts the gate the way `sendergate serve` does: the milter on
// a unix socket given to group postfix (milter.socket_group = "postfix"),
// the policy service on TCP admitting only 127.0.0.1 (policyd.peers), both
// through internal/gatelisten.
func startRig(t *testing.T) *rig {
	t.Helper()
	postfixtest.NeedPostfix(t) // before the postfix group is looked up
	f := newFixture(t, dkim.RSA2048)
	g := &rig{f: f, sink: relaytest.NewServer(t), servers: startZones(t, f)}
	// Not t.TempDir: the postfix user must traverse the path to the socket.
	dir, err := os.MkdirTemp("", "sendergate-milter-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	g.socket = filepath.Join(dir, "milter.sock")
	g.startMilter(t, "postfix")
	t.Cleanup(func() { g.milter.Close() })
	peers, err := gatelisten.ParsePeers([]string{"127.0.0.1"})
	must(t, err)
	pl, err := gatelisten.Listen("127.0.0.1:0", gatelisten.Options{Name: "policyd", Peers: peers})
	must(t, err)
	p := milter.NewPolicyd(milter.PolicydConfig{}, f.engine)
	go p.Serve(pl)
	t.Cleanup(func() { p.Close() })
	g.pf = startPostfix(t, g.sink.Addr, g.socket, pl.Addr().String())
	return g
}

// startMilter starts the milter on the rig's socket, owned by group
// (empty: the test's own group, root). Close the previous one first; the
// rig closes the last one.
func (g *rig) startMilter(t *testing.T, group string) {
	t.Helper()
	l, err := gatelisten.Listen("unix:"+g.socket, gatelisten.Options{Name: "milter", Group: group})
	must(t, err)
	g.milter = milter.NewMilter(milter.MilterConfig{}, g.f.engine)
	go g.milter.Serve(l)
}

// dial opens an SMTP session to Postfix authenticated as the test account.
func (g *rig) dial(t *testing.T) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(g.pf.SMTP)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	must(t, c.Hello("client.test"))
	must(t, c.Auth(sasl.NewPlainClient("", testUser, saslPassword)))
	return c
}

// send runs one transaction and returns the first refusal.
func send(c *smtp.Client, envFrom, headerFrom, subject string) error {
	if err := c.Mail(envFrom, nil); err != nil {
		return err
	}
	if err := c.Rcpt("rcpt@dest.example", nil); err != nil {
		c.Reset()
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: %s\r\nTo: rcpt@dest.example\r\nSubject: %s\r\nDate: %s\r\n"+
		"Message-ID: <%d@client.test>\r\n\r\nHello,\r\n\r\n  numbers\tinside.\r\n",
		headerFrom, subject, time.Now().Format(time.RFC1123Z), time.Now().UnixNano())
	return w.Close()
}

// wantSMTPError checks a refusal's code class and text.
func wantSMTPError(t *testing.T, err error, class int, text string) {
	t.Helper()
	se, ok := err.(*smtp.SMTPError)
	if !ok {
		t.Errorf("got %v, want a %dxx reply containing %q", err, class, text)
		return
	}
	e := se.EnhancedCode
	reply := fmt.Sprintf("%d %d.%d.%d %s", se.Code, e[0], e[1], e[2], se.Message)
	if se.Code/100 != class || !strings.Contains(reply, text) {
		t.Errorf("got %q, want a %dxx reply containing %q", reply, class, text)
	}
}

// waitMessages waits until the sink holds n messages and returns them.
func (g *rig) waitMessages(t *testing.T, n int) []relaytest.Received {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		msgs := g.sink.Messages()
		if len(msgs) >= n {
			if len(msgs) > n {
				t.Fatalf("sink has %d messages, want %d", len(msgs), n)
			}
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink has %d messages after waiting, want %d", len(msgs), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantDelivered checks that a delivered message carries the subject, the
// bounce envelope sender, and a signature for domain that go-msgauth and
// dkimpy both verify against the zone servers over DNS.
func (g *rig) wantDelivered(t *testing.T, m relaytest.Received, subject, domain, bounceSuffix string) {
	t.Helper()
	if !bytes.Contains(m.Data, []byte("Subject: "+subject+"\r\n")) {
		t.Errorf("delivered message is not %q:\n%s", subject, m.Data)
	}
	if !strings.HasPrefix(m.From, "bounce+") || !strings.HasSuffix(m.From, bounceSuffix) {
		t.Errorf("envelope sender %q, want bounce+ID...%s", m.From, bounceSuffix)
	}
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(m.Data), &msgauth.VerifyOptions{LookupTXT: dnsLookup(g.servers)})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != domain {
		t.Errorf("go-msgauth: %v %+v\n%s", err, vs, m.Data)
	}
	if got := dkimpy(t, m.Data, g.servers); got != "pass" {
		t.Errorf("dkimpy says %q", got)
	}
}

func TestPostfix(t *testing.T) {
	g := startRig(t)
	delivered := 0

	// docs/postfix.md: milter.socket_group = "postfix", mode 0660. Every
	// message below goes through this socket.
	t.Run("the milter socket is 0660 of group postfix", func(t *testing.T) {
		grp, err := user.LookupGroup("postfix")
		must(t, err)
		fi, err := os.Lstat(g.socket)
		must(t, err)
		if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
			t.Errorf("milter socket mode %v, want a socket with 0660", fi.Mode())
		}
		if gid := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Gid)); gid != grp.Gid {
			t.Errorf("milter socket group %s, want postfix (%s)", gid, grp.Gid)
		}
	})

	t.Run("authorized From is signed with the bounce envelope sender", func(t *testing.T) {
		c := g.dial(t)
		must(t, send(c, "news@example.com", "News <news@example.com>", "authorized"))
		must(t, send(c, "x@"+testSandbox, "x@"+testSandbox, "sandbox"))
		delivered += 2
		msgs := g.waitMessages(t, delivered)
		g.wantDelivered(t, msgs[delivered-2], "authorized", "example.com", "@rp.example.com")
		g.wantDelivered(t, msgs[delivered-1], "sandbox", testSandbox, ".bounce."+testZone)
	})

	t.Run("unauthorized From is refused with our 550", func(t *testing.T) {
		err := send(g.dial(t), "news@example.com", "CEO <ceo@bank.example>", "spoof")
		wantSMTPError(t, err, 5, "5.7.1 domain bank.example is not a sending domain of your organization")
	})

	t.Run("policy service refuses an unauthorized envelope sender", func(t *testing.T) {
		err := send(g.dial(t), "ceo@bank.example", "news@example.com", "envelope")
		wantSMTPError(t, err, 5, "5.7.1 <rcpt@dest.example>: Recipient address rejected: domain bank.example is not a sending domain")
	})

	t.Run("messages on one connection are decided each on its own", func(t *testing.T) {
		c := g.dial(t)
		steps := []struct {
			envFrom, from, subject string
			refusal                string
		}{
			{envFrom: "a@example.com", from: "a@example.com", subject: "one"},
			{envFrom: "a@example.com", from: "a@restricted.example", subject: "two", refusal: "5.7.1 domain restricted.example is not granted"},
			{envFrom: "a@example.com", from: "a@example.com", subject: "three"},
			{envFrom: "a@pending.example", from: "a@example.com", subject: "four", refusal: "domain pending.example is not verified yet"},
			{envFrom: "a@example.com", from: "b@example.com", subject: "five"},
		}
		var want []string
		for _, s := range steps {
			err := send(c, s.envFrom, s.from, s.subject)
			if s.refusal != "" {
				wantSMTPError(t, err, 5, s.refusal)
				continue
			}
			must(t, err)
			want = append(want, s.subject)
		}
		delivered += len(want)
		msgs := g.waitMessages(t, delivered)
		for i, subject := range want {
			g.wantDelivered(t, msgs[delivered-len(want)+i], subject, "example.com", "@rp.example.com")
		}
	})

	t.Run("the swaks lines of docs/postfix.md", func(t *testing.T) {
		swaks := postfixtest.NeedTool(t, "swaks")
		run := func(envFrom, headerFrom string) string {
			out, _ := exec.Command(swaks, "--server", g.pf.SMTP, "--auth", "PLAIN",
				"--auth-user", testUser, "--auth-password", saslPassword,
				"--from", envFrom, "--to", "rcpt@dest.example",
				"--header", "From: "+headerFrom, "--header", "Subject: swaks test").CombinedOutput()
			t.Logf("swaks --from %s with From: %s\n%s", envFrom, headerFrom, out)
			return string(out)
		}
		if out := run("ceo@bank.example", "ceo@bank.example"); !strings.Contains(out,
			"<** 554 5.7.1 <rcpt@dest.example>: Recipient address rejected: domain bank.example is not a sending domain") {
			t.Errorf("swaks refused by the policy service: want the 554 5.7.1 reply")
		}
		if out := run("news@example.com", "ceo@bank.example"); !strings.Contains(out, "<** 550 5.7.1 domain bank.example is not a sending domain") {
			t.Errorf("swaks refused by the milter: want the 550 5.7.1 reply")
		}
		if out := run("news@example.com", "news@example.com"); !strings.Contains(out, "<-  250 2.0.0 Ok: queued as") {
			t.Fatalf("allowed swaks session: want 250 Ok: queued")
		}
		delivered++
		msgs := g.waitMessages(t, delivered)
		g.wantDelivered(t, msgs[delivered-1], "swaks test", "example.com", "@rp.example.com")
	})

	t.Run("a milter socket Postfix may not open: tempfail, nothing sent", func(t *testing.T) {
		g.milter.Close()
		g.startMilter(t, "") // root's group: Postfix's smtpd (user postfix) gets EACCES
		g.wantTempfail(t, delivered)
		// The same socket given to group postfix works again: the group
		// was the difference.
		g.milter.Close()
		g.startMilter(t, "postfix")
		must(t, send(g.dial(t), "news@example.com", "news@example.com", "group postfix again"))
		delivered++
		g.wantDelivered(t, g.waitMessages(t, delivered)[delivered-1], "group postfix again", "example.com", "@rp.example.com")
	})

	t.Run("milter down: Postfix tempfails and accepts nothing", func(t *testing.T) {
		g.milter.Close()
		if _, err := os.Lstat(g.socket); err == nil {
			t.Errorf("the milter socket %s is still there after Close", g.socket)
		}
		g.wantTempfail(t, delivered)
	})
}

// wantTempfail checks that Postfix, unable to use the milter, answers 4xx
// (milter_default_action = tempfail) and the sink still holds delivered
// messages.
func (g *rig) wantTempfail(t *testing.T, delivered int) {
	t.Helper()
	c, err := smtp.Dial(g.pf.SMTP)
	must(t, err)
	defer c.Close()
	must(t, c.Hello("client.test"))
	// Postfix answers 4xx from the first command after the failed milter
	// connection on: AUTH, or else the transaction.
	err = c.Auth(sasl.NewPlainClient("", testUser, saslPassword))
	if err == nil {
		err = send(c, "news@example.com", "news@example.com", "unsigned")
	}
	wantSMTPError(t, err, 4, "")
	if n := len(g.sink.Messages()); n != delivered {
		t.Errorf("sink has %d messages, want %d", n, delivered)
	}
}
