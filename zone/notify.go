package zone

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// notifyTarget is a secondary sent NOTIFY after each change. kick holds at
// most one pending change: changes made while a NOTIFY is under way are
// coalesced into the next one, which carries the newest serial.
type notifyTarget struct {
	addr netip.AddrPort
	kick chan struct{}
}

// errNotifyRefused marks a NOTIFY the secondary answered with an error
// rcode: retrying would not help.
var errNotifyRefused = errors.New("secondary answered NOTIFY with an error")

// kickNotify marks a change pending for every target, without blocking.
func (s *Server) kickNotify() {
	for _, t := range s.notify {
		select {
		case t.kick <- struct{}{}:
		default: // one is pending already; it will carry the newest serial
		}
	}
}

// startNotify starts one sender per target; stopNotify ends them. Both are
// called with listenMu held.
func (s *Server) startNotify() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopNotify = cancel
	for _, t := range s.notify {
		s.notifyDone.Go(func() { s.notifyLoop(ctx, t) })
	}
}

func (s *Server) endNotify() {
	if s.stopNotify != nil {
		s.stopNotify()
		s.notifyDone.Wait()
		s.stopNotify = nil
	}
}

// notifyLoop sends t a NOTIFY for each pending change (RFC 1996 3.6):
// over UDP, retried with a doubling backoff until a NOTIFY response with
// the query's id arrives, at most notifyTries times.
func (s *Server) notifyLoop(ctx context.Context, t notifyTarget) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.kick:
		}
		wait := s.notifyBackoff
		for attempt := 1; ; attempt++ {
			select {
			case <-t.kick: // this attempt already carries the newest serial
			default:
			}
			soa := s.data.Load().soa
			err := s.sendNotify(ctx, t.addr, soa)
			if err == nil {
				s.metrics.notifySent.Add(1)
				s.log.Debug("dns: NOTIFY acknowledged", "zone", s.origin, "secondary", t.addr.String(), "serial", soa.Serial)
				break
			}
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, errNotifyRefused) || attempt == s.notifyTries {
				s.metrics.notifyFailed.Add(1)
				s.log.Warn("dns: NOTIFY failed; the secondary picks the change up at its next refresh",
					"zone", s.origin, "secondary", t.addr.String(), "serial", soa.Serial, "attempts", attempt, "error", err)
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait *= 2
		}
	}
}

// sendNotify sends one NOTIFY for soa's zone to addr and waits for its
// response. A reply that is not the response to this NOTIFY is an error.
func (s *Server) sendNotify(ctx context.Context, addr netip.AddrPort, soa *dns.SOA) error {
	m := new(dns.Msg)
	m.SetNotify(s.origin)
	m.Answer = []dns.RR{soa} // the new serial, a hint (RFC 1996 3.7)
	c := &dns.Client{Net: "udp", Timeout: s.notifyTimeout}
	r, _, err := c.ExchangeContext(ctx, m, addr.String())
	switch {
	case err != nil:
		return fmt.Errorf("zone: NOTIFY to %s: %w", addr, err)
	case r.Id != m.Id || !r.Response || r.Opcode != dns.OpcodeNotify ||
		len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, s.origin):
		return fmt.Errorf("zone: NOTIFY to %s: the reply (opcode %s) is not a NOTIFY response for %s",
			addr, dns.OpcodeToString[r.Opcode], s.origin)
	case r.Rcode != dns.RcodeSuccess:
		return fmt.Errorf("zone: NOTIFY to %s: %w: %s (allow-notify on the secondary must list this host)",
			addr, errNotifyRefused, dns.RcodeToString[r.Rcode])
	}
	return nil
}
