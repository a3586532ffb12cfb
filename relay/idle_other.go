//go:build !unix

package relay

import "net"

// idleCheck cannot peek at the socket here: pooled connections always
// take the DATA way (see chunked).
type idleCheck struct{}

func newIdleCheck(net.Conn) *idleCheck { return nil }

func (*idleCheck) isOpen() bool { return false }
