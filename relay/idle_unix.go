//go:build unix

package relay

import (
	"crypto/tls"
	"net"
	"syscall"
)

// idleCheck peeks at the TCP socket of a pooled connection. Everything it
// needs is made when the connection is dialed, so a check allocates
// nothing.
type idleCheck struct {
	rc   syscall.RawConn
	fn   func(fd uintptr) bool
	buf  [1]byte
	open bool
}

// newIdleCheck returns the check for c (TLS over TCP, or TCP), or nil when
// c is neither.
func newIdleCheck(c net.Conn) *idleCheck {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	k := &idleCheck{rc: rc}
	k.fn = k.peek
	return k
}

func (k *idleCheck) peek(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), k.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	k.open = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
	return true // never wait for input
}

// isOpen reports, without blocking, whether the connection is still open
// with nothing unread: the socket holds no data, no end of stream and no
// error. Under TLS anything waiting may be a TLS record, so only an empty
// socket counts. A nil check reports false.
func (k *idleCheck) isOpen() bool {
	if k == nil {
		return false
	}
	k.open = false
	return k.rc.Read(k.fn) == nil && k.open
}
