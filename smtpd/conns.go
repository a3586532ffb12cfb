package smtpd

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
)

// trackingListener registers every accepted connection with the server,
// so that Shutdown can close the idle ones (go-smtp's Shutdown only waits
// for clients to leave).
type trackingListener struct {
	net.Listener
	s *Server
}

// Accept implements net.Listener.
func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, s: l.s, connID: newID()}
	l.s.mu.Lock()
	l.s.conns[tc] = struct{}{}
	l.s.mu.Unlock()
	if l.s.closing.Load() {
		tc.Close()
	}
	return tc, nil
}

// trackedConn is an accepted connection; busy is set while a transaction
// (MAIL to the reply to DATA) is in progress on it.
type trackedConn struct {
	net.Conn
	s      *Server
	connID string // on every log line of the connection
	busy   atomic.Bool
	once   sync.Once
}

// Close implements net.Conn and forgets the connection.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// tracked returns the trackedConn under c (through TLS), or nil.
func tracked(c net.Conn) *trackedConn {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	tc, _ := c.(*trackedConn)
	return tc
}
