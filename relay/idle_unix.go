//go:build unix

package relay

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// idleOpen reports, without blocking, whether a pooled connection is still
// open with nothing unread: a peek at the TCP socket finds no data, no
// end of stream and no error. Under TLS anything waiting may be a TLS
// record, so only an empty socket counts.
func idleOpen(c net.Conn) bool {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, perr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(perr, syscall.EAGAIN) || errors.Is(perr, syscall.EWOULDBLOCK)
		return true // never wait for input
	})
	return err == nil && open
}
