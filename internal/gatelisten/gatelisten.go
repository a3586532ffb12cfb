// Package gatelisten opens the listeners of the milter gate and the Postfix
// policy service. Both protocols trust their peer: a milter client asserts
// the SASL login ({auth_authen}) and gets mail signed for that account's
// domains, a policy client asserts sasl_username. So whoever can connect can
// claim any account, and the listener is the trust boundary:
//
//   - "host:port" is a TCP listener that admits only the configured peers
//     (IPs or CIDR prefixes); any other connection is closed before a byte
//     is read or written, logged and counted;
//   - "unix:/absolute/path" is a unix-domain socket with mode 0660, owned by
//     a configured group (the MTA's), so file permissions decide who may
//     connect.
//
// The profiling listener (debug.listen) uses its unix sockets too, with
// mode 0600.
package gatelisten

import (
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// SocketMode is the permission of a unix socket: the daemon's user and
// the socket's group may connect, nobody else.
const SocketMode = 0o660

// Options configures Listen.
type Options struct {
	// Name is the listener's name, "milter" or "policyd": it appears in log
	// lines and names the metric sendergate_<Name>_peer_refused_total.
	Name string
	// Peers are the TCP peers admitted. Empty admits no one: the listener
	// fails closed. Unused for unix sockets.
	Peers []netip.Prefix
	// Group owns a unix socket: a group name or a numeric gid. Empty leaves
	// the daemon's group. Unused for TCP.
	Group string
	// Mode is a unix socket's permission; 0 means SocketMode. Unused for
	// TCP.
	Mode fs.FileMode
	// Logger gets one line per refused connection; nil discards.
	Logger *slog.Logger
	// Registerer, when set, receives the refusal counter of a TCP listener
	// (registered at once, so the series exists from start at 0).
	Registerer prometheus.Registerer
}

// Listen opens addr: "unix:/absolute/path" for a unix socket, otherwise a
// TCP "host:port" that admits only o.Peers. Close releases the listener
// and, for a unix socket, removes its file.
func Listen(addr string, o Options) (net.Listener, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		mode := o.Mode
		if mode == 0 {
			mode = SocketMode
		}
		return listenUnix(path, o.Group, mode)
	}
	return listenTCP(addr, o)
}

// ParsePeers parses a peers list of IP addresses and CIDR prefixes. A bare
// address becomes a single-address prefix (/32 or /128); IPv4-mapped IPv6
// forms become their IPv4 equivalent, since connections are matched by
// their unmapped address.
func ParsePeers(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := parsePeer(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePeer(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.WithZone("").Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("peer %q is neither an IP address nor a CIDR prefix", s)
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// admitted reports whether a connection from addr may talk to the gate.
// IPv4-mapped IPv6 addresses (a dual-stack socket's view of IPv4 peers)
// and IPv6 zones are dropped first: netip.Prefix.Contains never matches
// either.
func admitted(peers []netip.Prefix, addr netip.Addr) bool {
	addr = addr.WithZone("").Unmap()
	for _, p := range peers {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
