package smtpd

import (
	"net/netip"
	"sync"
)

// Connection refusal reasons, the values of the "reason" label of
// sendergate_smtpd_connections_refused_total.
const (
	refusedTotal = "max_connections"        // Config.MaxConnections reached
	refusedPerIP = "max_connections_per_ip" // Config.MaxConnectionsPerIP reached
	refusedProxy = "proxy_header"           // a trusted proxy sent no valid PROXY header
)

// connCounter counts open connections, in total and per client address
// (IPv4 address or IPv6 /64, as the AUTH limiter counts them).
type connCounter struct {
	max, perIP int

	mu    sync.Mutex
	total int
	byIP  map[netip.Addr]int
}

func newConnCounter(max, perIP int) *connCounter {
	return &connCounter{max: max, perIP: perIP, byIP: make(map[netip.Addr]int)}
}

// acquire counts a new connection from key and returns "", or the reason
// it is refused (then nothing is counted). An invalid key counts against
// the total only.
func (c *connCounter) acquire(key netip.Addr) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total >= c.max {
		return refusedTotal
	}
	if key.IsValid() {
		if c.byIP[key] >= c.perIP {
			return refusedPerIP
		}
		c.byIP[key]++
	}
	c.total++
	return ""
}

// release forgets a connection counted by acquire.
func (c *connCounter) release(key netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if key.IsValid() {
		if c.byIP[key] <= 1 {
			delete(c.byIP, key)
		} else {
			c.byIP[key]--
		}
	}
}

// open returns the number of open connections.
func (c *connCounter) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}
