package main

import (
	"net"
	"sync"
	"time"
)

// batchListener makes the sink answer pipelined commands (RFC 2920) the
// way Postfix's smtpd does: replies are held while more input is waiting
// and sent in one write once the server reads the socket again (go-smtp
// alone writes every reply line with its own write). A group of MAIL,
// RCPT and DATA from sendergate's relay then gets its three replies in one
// segment, as from a real upstream.
type batchListener struct{ net.Listener }

func (l batchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &batchConn{Conn: c}, nil
}

// batchConn holds what go-smtp writes until the next read or the close.
type batchConn struct {
	net.Conn
	mu  sync.Mutex
	buf []byte
}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	if len(c.buf) >= 4<<10 {
		return len(p), c.flushLocked()
	}
	return len(p), nil
}

func (c *batchConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

func (c *batchConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	err := c.flushLocked()
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// Close sends what is held first, under a deadline of its own (crypto/tls
// leaves an expired one after its close_notify alert).
func (c *batchConn) Close() error {
	c.mu.Lock()
	if len(c.buf) > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_ = c.flushLocked()
	}
	c.mu.Unlock()
	return c.Conn.Close()
}
