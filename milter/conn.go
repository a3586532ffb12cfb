package milter

import (
	"net"
	"sync"
	"time"
)

// deadlineListener wraps accepted connections so that every Read and Write
// gets a fresh deadline (go-milter sets none), and remembers the open
// connections so that Close can end them.
type deadlineListener struct {
	net.Listener
	idle, write time.Duration

	mu     sync.Mutex
	conns  map[*deadlineConn]struct{}
	closed bool
}

func newDeadlineListener(l net.Listener, idle, write time.Duration) *deadlineListener {
	return &deadlineListener{Listener: l, idle: idle, write: write, conns: map[*deadlineConn]struct{}{}}
}

// Accept returns the next connection wrapped with per-operation deadlines.
func (l *deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	dc := &deadlineConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[dc] = struct{}{}
	return dc, nil
}

// closeAll closes the listener and every open connection.
func (l *deadlineListener) closeAll() error {
	l.mu.Lock()
	l.closed = true
	conns := make([]*deadlineConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	err := l.Listener.Close()
	for _, c := range conns {
		c.Close()
	}
	return err
}

// deadlineConn extends its read deadline by the idle timeout before every
// Read and its write deadline before every Write: a peer that stops talking
// for longer than the idle timeout is disconnected.
type deadlineConn struct {
	net.Conn
	l    *deadlineListener
	once sync.Once
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.l.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.l.write)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *deadlineConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
