// Package loopback keeps the benchmark tools on this machine: they refuse
// any target that is not a loopback address.
package loopback

import (
	"fmt"
	"net"
)

// Check returns an error unless every address host:port resolves to is a
// loopback address (127.0.0.0/8, ::1).
func Check(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("-addr %q resolves to %s: loopback only", addr, ip)
		}
	}
	return nil
}
