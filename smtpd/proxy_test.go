package smtpd_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	proxyproto "github.com/pires/go-proxyproto"

	"github.com/sendergate/sendergate/gate"
	"github.com/sendergate/sendergate/relay"
	"github.com/sendergate/sendergate/smtpd"
)

// The fake load balancer connects from lbAddr, the only proxy trusted.
const lbAddr = "127.0.0.2"

func withProxy(perIP int) option {
	return withConfig(func(c *smtpd.Config) {
		c.ProxyFrom = []string{lbAddr + "/32"}
		c.MaxConnectionsPerIP = perIP
	})
}

// viaProxy connects to addr as the load balancer and writes the PROXY
// header (version 1 or 2) of a client at client:port.
func viaProxy(t testing.TB, addr string, version byte, client string) net.Conn {
	t.Helper()
	c := dialFrom(t, lbAddr, addr)
	dst := c.RemoteAddr().(*net.TCPAddr)
	src := &net.TCPAddr{IP: net.ParseIP(client), Port: 40001}
	h := proxyproto.HeaderProxyFromAddrs(version, src, dst)
	if _, err := h.WriteTo(c); err != nil {
		t.Fatalf("write PROXY header: %v", err)
	}
	return c
}

// proxiedClient is a go-smtp client behind the load balancer, after EHLO.
func proxiedClient(t testing.TB, addr string, version byte, client string) *smtp.Client {
	t.Helper()
	c := smtp.NewClient(viaProxy(t, addr, version, client))
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO via proxy: %v", err)
	}
	return c
}

// proxiedTLS is proxiedClient after STARTTLS.
func proxiedTLS(t testing.TB, f *fixture, version byte, client string) *smtp.Client {
	t.Helper()
	c, err := smtp.NewClientStartTLS(viaProxy(t, f.addr, version, client), f.client)
	if err != nil {
		t.Fatalf("STARTTLS via proxy: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestProxyProtocol(t *testing.T) {
	f := testServer(t, withProxy(50))
	const attacker, neighbour = "203.0.113.7", "203.0.113.8"

	t.Run("the client's address decides where AUTH is offered", func(t *testing.T) {
		for _, v := range []byte{1, 2} {
			c := proxiedClient(t, f.addr, v, attacker)
			if ok, _ := c.Extension("AUTH"); ok {
				t.Errorf("v%d: AUTH offered before STARTTLS to a remote client behind the proxy", v)
			}
			wantSMTPCode(t, c.Auth(sasl.NewPlainClient("", appUser, appPass)), 538, smtp.EnhancedCode{5, 7, 11})
		}
	})
	t.Run("lockout applies to the client's address only", func(t *testing.T) {
		for i := range 5 {
			c := proxiedTLS(t, f, byte(1+i%2), attacker)
			err := c.Auth(sasl.NewPlainClient("", appUser, fmt.Sprintf("guess-%d", i)))
			wantSMTPCode(t, err, 535, smtp.EnhancedCode{5, 7, 8})
		}
		c := proxiedTLS(t, f, 1, attacker)
		wantSMTPCode(t, c.Auth(sasl.NewPlainClient("", appUser, appPass)), 421, smtp.EnhancedCode{4, 7, 0})

		// Another client through the same proxy is not locked out, and
		// its address is the one in the Received field.
		n := proxiedTLS(t, f, 2, neighbour)
		if err := n.Auth(sasl.NewPlainClient("", appUser, appPass)); err != nil {
			t.Fatalf("AUTH of another client behind the proxy: %v", err)
		}
		wantReply(t, mustSend(t, n, message("From: a@news.example.com")), 250, ok250)
		got := f.upstream.Messages()
		if data := string(got[len(got)-1].Data); !strings.Contains(data, "["+neighbour+"]") {
			t.Errorf("Received field does not name the client %s:\n%.600s", neighbour, data)
		}
		if logs := f.logs.String(); !strings.Contains(logs, "remote="+attacker) || !strings.Contains(logs, "proxy="+lbAddr) {
			t.Errorf("logs do not name the client and its proxy:\n%s", logs)
		}
	})
	t.Run("a trusted proxy must send the header", func(t *testing.T) {
		c := newRaw(t, dialFrom(t, lbAddr, f.addr))
		c.send("EHLO client.test")
		c.want(421, "4.7.0 Expected a PROXY protocol header")
	})
	t.Run("a header from an untrusted address has no effect", func(t *testing.T) {
		c := dialRaw(t, f.addr) // from 127.0.0.1, not a trusted proxy
		if code, msg := c.cmd("PROXY TCP4 " + attacker + " 127.0.0.1 40001 1587"); code/100 != 5 {
			t.Fatalf("PROXY line from a direct client: %d %s, want a 5xx (not a command)", code, msg)
		}
		// Still the loopback client: AUTH offered, not locked out.
		if ext := c.ehlo(); !strings.Contains(ext, "AUTH PLAIN LOGIN") {
			t.Errorf("EHLO %q: the header changed the client's address", ext)
		}
		if code, msg := c.authPlain(appUser, appPass); code != 235 {
			t.Errorf("AUTH: %d %s, want 235", code, msg)
		}
	})
}

func TestProxyConnectionLimit(t *testing.T) {
	// Every connection comes from the proxy's address: the per-IP limit
	// must count the clients behind it.
	f := testServer(t, withProxy(2))
	for range 2 {
		c := newRaw(t, viaProxy(t, f.addr, 2, "198.51.100.1"))
		c.want(220, "")
	}
	c := newRaw(t, viaProxy(t, f.addr, 1, "198.51.100.1"))
	c.want(421, "4.7.0")
	other := newRaw(t, viaProxy(t, f.addr, 1, "198.51.100.2"))
	other.want(220, "")
}

func TestProxyFromInvalid(t *testing.T) {
	f := testServer(t)
	cfg := smtpd.Config{ProxyFrom: []string{"10.0.0.0/8", "not-an-ip"}, Gate: gate.New(f.engine, f.store, gate.Options{})}
	_, err := smtpd.New(cfg, f.engine, relay.NewUpstream(relay.UpstreamConfig{Addr: f.upstream.Addr}))
	if err == nil || !strings.Contains(err.Error(), "not-an-ip") {
		t.Fatalf("New with an invalid proxy_from: %v, want an error naming it", err)
	}
}
