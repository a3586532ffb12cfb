package smtpd

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// proxyHeaderTimeout bounds the wait for the PROXY header of a trusted
// proxy (go-proxyproto's default).
const proxyHeaderTimeout = 10 * time.Second

// proxyTrust reads the PROXY protocol header (v1 or v2, as HAProxy
// defines them) of connections from trusted proxies. A connection from a
// trusted address must start with one; any other connection is a direct
// client, and a header it sends is just an unknown command to go-smtp.
type proxyTrust struct {
	from []netip.Prefix // empty: PROXY protocol off
}

// parseProxyFrom parses IPs and CIDR prefixes (submission.proxy_from).
func parseProxyFrom(list []string) (proxyTrust, error) {
	var t proxyTrust
	for _, s := range list {
		if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			t.from = append(t.from, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return proxyTrust{}, fmt.Errorf("smtpd: proxy_from %q is not an IP address or CIDR prefix", s)
		}
		t.from = append(t.from, p.Masked())
	}
	return t, nil
}

func (t proxyTrust) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t.from {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// read returns the connection to speak SMTP on, the client's address and,
// when the client came through a trusted proxy, the proxy's address. An
// error means a trusted proxy sent no valid header.
func (t proxyTrust) read(c net.Conn) (net.Conn, netip.AddrPort, net.Addr, error) {
	peer := addrPort(c.RemoteAddr())
	if len(t.from) == 0 || !t.trusts(peer.Addr()) {
		return c, peer, nil, nil
	}
	if err := c.SetReadDeadline(time.Now().Add(proxyHeaderTimeout)); err != nil {
		return nil, peer, nil, err
	}
	br := bufio.NewReaderSize(c, 256) // a v1 header is at most 107 octets
	h, err := proxyproto.Read(br)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = proxyproto.ErrNoProxyProtocol
		}
		return nil, peer, nil, err
	}
	_ = c.SetReadDeadline(time.Time{})
	bc := &bufConn{Conn: c, r: br}
	// LOCAL (a health check of the proxy itself) and UNKNOWN carry no
	// client: the proxy is the client.
	if h.Command.IsLocal() {
		return bc, peer, nil, nil
	}
	src, _, ok := h.TCPAddrs()
	if !ok {
		return bc, peer, nil, nil
	}
	return bc, src.AddrPort(), c.RemoteAddr(), nil
}

// bufConn is a connection whose first bytes (after the PROXY header) are
// in r.
type bufConn struct {
	net.Conn
	r *bufio.Reader // nil once drained
}

// Read implements net.Conn.
func (c *bufConn) Read(p []byte) (int, error) {
	if c.r != nil {
		if c.r.Buffered() > 0 {
			return c.r.Read(p)
		}
		c.r = nil
	}
	return c.Conn.Read(p)
}

// addrPort converts a TCP address; other addresses give the zero value.
func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
