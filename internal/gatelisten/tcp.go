package gatelisten

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
)

// peerListener is a TCP listener whose Accept returns only connections
// from admitted peers.
type peerListener struct {
	net.Listener
	name    string
	peers   []netip.Prefix
	log     *slog.Logger
	refused prometheus.Counter
}

func listenTCP(addr string, o Options) (net.Listener, error) {
	refused := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sendergate_" + o.Name + "_peer_refused_total",
		Help: "TCP connections to the " + o.Name + " listener closed unread because the peer address is not in " + o.Name + ".peers.",
	})
	if o.Registerer != nil {
		if err := o.Registerer.Register(refused); err != nil {
			return nil, fmt.Errorf("register %s refusal metric: %w", o.Name, err)
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if o.Registerer != nil {
			o.Registerer.Unregister(refused)
		}
		return nil, err
	}
	if len(o.Peers) == 0 {
		o.Logger.Warn("peers is empty: every TCP connection will be refused", "listener", o.Name)
	}
	return &peerListener{Listener: l, name: o.Name, peers: o.Peers, log: o.Logger, refused: refused}, nil
}

// Accept returns the next connection from an admitted peer. Others are
// closed before anything is read or written: a peer outside the list never
// speaks to the gate, so it can claim no account.
func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		remote := remoteAddr(c)
		if admitted(l.peers, remote) {
			return c, nil
		}
		c.Close()
		l.refused.Inc()
		l.log.Warn("connection refused: peer not in "+l.name+".peers",
			"listener", l.name, "remote", c.RemoteAddr().String())
	}
}

// remoteAddr is the connection's peer IP, or the zero Addr (which no
// prefix contains) when it is not TCP.
func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr()
	}
	return netip.Addr{}
}
