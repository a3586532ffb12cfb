// Package demodns is the customer DNS of sendergate's local trial
// (`sendergate serve -demo`): a loopback DNS server that plays, at once, the
// DNS provider of every domain added to sendergate and the recursive
// resolver in front of it, so that verification and DKIM checks work on a
// laptop where nobody can publish records.
//
// It publishes what its Source lists (the CNAMEs each added domain must
// publish) the moment the domain exists, and forwards every query for the
// provider zone to sendergate's own zone server, as the Internet reaches a
// delegated zone. Like a recursive resolver (RFC 1034 3.6.2, 4.3.2) it
// follows a CNAME it serves to its target, inside or outside the provider
// zone, and answers with the chain and the data at its end; its answers
// have recursion available and are not authoritative.
//
// To see what verification says about a wrong record, an overrides file in
// zone-file syntax (RFC 1035 5.1) replaces the published records of every
// owner name it holds: a TXT record in place of the DKIM CNAME, or a CNAME
// to the wrong target. It is read on every query, so an edit takes effect
// at once.
//
// The server refuses to listen anywhere but on loopback: it answers for any
// name it is told to, which is only safe on the machine itself.
package demodns

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// TTL is the TTL of the published records.
const TTL = 60

// maxChain bounds the CNAME chain followed for one answer.
const maxChain = 8

// forwardTimeout bounds one exchange with the provider zone's server.
const forwardTimeout = 2 * time.Second

// Record is one record a domain publishes at its DNS provider.
type Record struct {
	Host  string // owner name, with or without the trailing dot
	Type  string // "CNAME", or any type miekg/dns parses ("TXT", "A")
	Value string // the record data in zone-file syntax
}

// Source lists the records every added domain publishes. It is asked on
// every query, so a domain is served as soon as it exists.
type Source interface {
	Records(ctx context.Context) ([]Record, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) ([]Record, error)

// Records implements Source.
func (f SourceFunc) Records(ctx context.Context) ([]Record, error) { return f(ctx) }

var _ Source = SourceFunc(nil)

// Config configures a Server.
type Config struct {
	// Addr is the loopback "ip:port" to listen on (UDP and TCP); port 0
	// picks a free one (see Server.Addr).
	Addr   string
	Source Source
	// Zone is the provider zone (dns.zone) and ZoneServer the "ip:port"
	// of the server that answers for it; every query at or under Zone is
	// forwarded there.
	Zone, ZoneServer string
	// Overrides is the path of a zone file whose owner names replace the
	// published records; empty or missing is none.
	Overrides string
	Logger    *slog.Logger
}

// Server is a running customer DNS.
type Server struct {
	cfg  Config
	zone string // lowercase FQDN
	udp  *dns.Server
	tcp  *dns.Server
	addr string
}

// Start listens on cfg.Addr (UDP and TCP, the same port) and serves until
// Shutdown. An address off loopback is refused.
func Start(cfg Config) (*Server, error) {
	if cfg.Source == nil {
		return nil, errors.New("demodns: no source of records")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := CheckLoopback(cfg.Addr); err != nil {
		return nil, fmt.Errorf("demodns: %w", err)
	}
	s := &Server{cfg: cfg, zone: dns.Fqdn(strings.ToLower(cfg.Zone))}
	pc, l, err := listen(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("demodns: listen %s: %w", cfg.Addr, err)
	}
	s.addr = pc.LocalAddr().String()
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: l, Handler: s}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				cfg.Logger.Error("demo DNS stopped", "err", err)
			}
		}()
		<-started
	}
	return s, nil
}

// CheckLoopback refuses a listen address whose host is not a loopback IP
// or "localhost".
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q must be ip:port", addr)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address (127.0.0.1, [::1])", addr)
	}
	return nil
}

// listen opens UDP and TCP on one port; with port 0 it retries until the
// TCP side of a free UDP port is free too.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	tries := 1
	if port == "0" {
		tries = 20
	}
	var last error
	for range tries {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l, nil
		}
		last = err
		_ = pc.Close()
	}
	return nil, nil, last
}

// Addr is the "ip:port" the server answers on (UDP and TCP).
func (s *Server) Addr() string { return s.addr }

// Shutdown stops both listeners.
func (s *Server) Shutdown(ctx context.Context) error {
	return errors.Join(s.udp.ShutdownContext(ctx), s.tcp.ShutdownContext(ctx))
}

// ServeDNS answers one query as a recursive resolver would: from the
// published records (and overrides), following CNAMEs, and through the
// provider zone's server for names in it.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if req.Response {
		return
	}
	network := "udp"
	if _, udp := w.RemoteAddr().(*net.UDPAddr); !udp {
		network = "tcp"
	}
	resp := s.answer(req, network)
	resp.RecursionAvailable, resp.Authoritative = true, false
	if req.IsEdns0() != nil && resp.IsEdns0() == nil {
		resp.SetEdns0(1232, false)
	}
	if network == "udp" {
		resp.Truncate(dns.MinMsgSize)
		if opt := req.IsEdns0(); opt != nil {
			resp.Truncate(int(max(dns.MinMsgSize, min(opt.UDPSize(), 1232))))
		}
	}
	if err := w.WriteMsg(resp); err != nil {
		s.cfg.Logger.Debug("demo DNS: write reply", "err", err)
	}
}

func (s *Server) answer(req *dns.Msg, network string) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		resp.Rcode = dns.RcodeNotImplemented
		return resp
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if s.inZone(name) {
		return s.forward(req, network)
	}
	ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
	defer cancel()
	data, err := s.records(ctx)
	if err != nil {
		s.cfg.Logger.Warn("demo DNS: records unavailable, answering SERVFAIL", "err", err)
		resp.Rcode = dns.RcodeServerFailure
		return resp
	}
	for hop := 0; hop < maxChain; hop++ {
		rrs, exists := data[name]
		if !exists {
			if hop > 0 {
				return resp // the chain leads to a name nobody publishes here: the chain alone
			}
			resp.Rcode = dns.RcodeNameError
			if hasChildren(data, name) {
				resp.Rcode = dns.RcodeSuccess // an empty non-terminal (RFC 8020)
			}
			return resp
		}
		var cname *dns.CNAME
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype || q.Qtype == dns.TypeANY {
				resp.Answer = append(resp.Answer, rr)
			} else if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if cname == nil || q.Qtype == dns.TypeCNAME {
			return resp
		}
		resp.Answer = append(resp.Answer, cname)
		name = strings.ToLower(cname.Target)
		if s.inZone(name) {
			return s.chase(resp, name, q.Qtype, network)
		}
	}
	return resp
}

// chase appends the provider zone's answer for (name, qtype) to resp, the
// last step of a CNAME chain into the zone; a failure there is SERVFAIL.
func (s *Server) chase(resp *dns.Msg, name string, qtype uint16, network string) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	r := s.forward(q, network)
	resp.Answer = append(resp.Answer, r.Answer...)
	if r.Rcode != dns.RcodeSuccess {
		resp.Rcode = r.Rcode
	}
	return resp
}

// forward asks the provider zone's server; SERVFAIL when it does not answer.
func (s *Server) forward(req *dns.Msg, network string) *dns.Msg {
	c := &dns.Client{Net: network, Timeout: forwardTimeout}
	resp, _, err := c.Exchange(req.Copy(), s.cfg.ZoneServer)
	if err == nil && resp.Truncated && network == "udp" {
		resp, _, err = (&dns.Client{Net: "tcp", Timeout: forwardTimeout}).Exchange(req.Copy(), s.cfg.ZoneServer)
	}
	if err != nil {
		s.cfg.Logger.Warn("demo DNS: the provider zone's server did not answer", "zone", s.cfg.Zone, "server", s.cfg.ZoneServer, "err", err)
		resp = new(dns.Msg)
		resp.SetRcode(req, dns.RcodeServerFailure)
		return resp
	}
	resp.Id = req.Id
	return resp
}

func (s *Server) inZone(name string) bool {
	return s.zone != "." && (name == s.zone || strings.HasSuffix(name, "."+s.zone))
}

// records returns what is served, by lowercase FQDN: the source's records,
// each owner in the overrides file replaced by the file's records.
func (s *Server) records(ctx context.Context) (map[string][]dns.RR, error) {
	recs, err := s.cfg.Source.Records(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]dns.RR{}
	for _, r := range recs {
		rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", dns.Fqdn(r.Host), TTL, r.Type, r.Value))
		if err != nil || rr == nil {
			s.cfg.Logger.Warn("demo DNS: skipping a record that does not parse", "host", r.Host, "type", r.Type, "err", err)
			continue
		}
		name := strings.ToLower(rr.Header().Name)
		out[name] = append(out[name], rr)
	}
	over, err := s.overrides()
	if err != nil {
		s.cfg.Logger.Warn("demo DNS: overrides file ignored", "path", s.cfg.Overrides, "err", err)
		return out, nil
	}
	for name, rrs := range over {
		out[name] = rrs
	}
	return out, nil
}

// overrides reads the overrides file, by lowercase owner name.
func (s *Server) overrides() (map[string][]dns.RR, error) {
	if s.cfg.Overrides == "" {
		return nil, nil
	}
	f, err := os.Open(s.cfg.Overrides)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][]dns.RR{}
	zp := dns.NewZoneParser(f, ".", s.cfg.Overrides)
	zp.SetDefaultTTL(TTL)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		name := strings.ToLower(rr.Header().Name)
		out[name] = append(out[name], rr)
	}
	if err := zp.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// hasChildren tells whether some served name is below name.
func hasChildren(data map[string][]dns.RR, name string) bool {
	for n := range data {
		if strings.HasSuffix(n, "."+name) {
			return true
		}
	}
	return false
}
