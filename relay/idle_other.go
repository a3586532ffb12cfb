//go:build !unix

package relay

import "net"

// idleOpen cannot peek at the socket here: pooled connections always take
// the DATA way (see chunked).
func idleOpen(net.Conn) bool { return false }
