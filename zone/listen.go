package zone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/miekg/dns"
)

// bindAttempts bounds the retries when addr has port 0 and the port the
// kernel picked for UDP is already taken for TCP.
const bindAttempts = 10

// Start listens on UDP and TCP at addr (same port on both; "127.0.0.1:0"
// picks a free one) and returns once both listeners are serving; it also
// starts sending NOTIFY to Config.Notify, for the changes made so far too.
// It fails when the server is already started.
func (s *Server) Start(addr string) error {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.udp != nil {
		return errors.New("zone: server already started")
	}
	pc, ln, err := listenBoth(addr)
	if err != nil {
		return fmt.Errorf("zone: listen on %s: %w", addr, err)
	}
	udp := &dns.Server{PacketConn: pc, Handler: s, UDPSize: dns.DefaultMsgSize}
	tcp := &dns.Server{Listener: ln, Handler: s}
	if err := s.serve(udp, tcp); err != nil {
		pc.Close()
		ln.Close()
		return fmt.Errorf("zone: serve on %s: %w", addr, err)
	}
	s.udp, s.tcp = udp, tcp
	s.startNotify()
	return nil
}

// listenBoth binds UDP first, then TCP on the port UDP got.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for attempt := 1; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		tcpAddr := net.JoinHostPort(host, fmt.Sprint(pc.LocalAddr().(*net.UDPAddr).Port))
		ln, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || !errors.Is(err, syscall.EADDRINUSE) || attempt == bindAttempts {
			return nil, nil, err
		}
	}
}

// serve starts both servers and waits until each has started or failed.
func (s *Server) serve(servers ...*dns.Server) error {
	type result struct {
		srv *dns.Server
		err error
	}
	ready := make(chan result, 2*len(servers))
	for _, srv := range servers {
		srv.NotifyStartedFunc = func() { ready <- result{srv: srv} }
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				ready <- result{srv: srv, err: err}
				s.log.Error("dns: listener stopped", "zone", s.origin, "error", err)
			}
		}()
	}
	var errs []error
	for range servers {
		if r := <-ready; r.err != nil {
			errs = append(errs, r.err)
		}
	}
	if len(errs) > 0 {
		for _, srv := range servers {
			srv.Shutdown() // stop the one that did start; errors for the other are expected
		}
		return errors.Join(errs...)
	}
	return nil
}

// UDPAddr returns the UDP listening address, or nil before Start.
func (s *Server) UDPAddr() net.Addr {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.udp == nil {
		return nil
	}
	return s.udp.PacketConn.LocalAddr()
}

// TCPAddr returns the TCP listening address, or nil before Start.
func (s *Server) TCPAddr() net.Addr {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Listener.Addr()
}

// Shutdown stops the NOTIFY sender and both listeners and waits, until ctx
// is done, for TCP connections (zone transfers) in flight. It is a no-op when the server was
// not started; afterwards Start may be called again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.udp == nil {
		return nil
	}
	s.endNotify()
	err := errors.Join(s.udp.ShutdownContext(ctx), s.tcp.ShutdownContext(ctx))
	s.udp, s.tcp = nil, nil
	if err != nil {
		return fmt.Errorf("zone: shutdown: %w", err)
	}
	return nil
}
