// Package dnstest provides an in-process DNS server (RFC 1035) that plays a
// customer's DNS provider, or the recursive resolver in front of it, in
// tests: it answers from a record set the test edits, on UDP and TCP at one
// 127.0.0.1 port, and never chases CNAMEs.
//
// A name with no records is answered NXDOMAIN; a name with records is
// answered with those of the asked type plus any CNAME (RFC 1034 3.6.2), so
// an empty answer means "no data". Names can be made to answer SERVFAIL, or
// to answer truncated (TC, RFC 1035 4.1.1) over UDP so that a client must
// retry over TCP (RFC 7766). Queries carrying an EDNS(0) OPT record
// (RFC 6891) are answered with one.
//
// A zone can be delegated to another server (Delegate), such as a real
// zone.Server: queries for names in it are forwarded there and its answer
// returned, as a recursive resolver reaches a delegated zone. Without a
// delegation those names are answered from the record set like any other,
// so a test can play a provider zone that is not delegated (NXDOMAIN).
package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// cnameTTL is the TTL of the records PublishCNAME adds.
const cnameTTL = 300

// forwardTimeout bounds one forwarded exchange with a delegated server.
const forwardTimeout = 2 * time.Second

// Server is a DNS server on loopback whose data the test edits. Its methods
// are safe for concurrent use with the queries it answers.
type Server struct {
	addr string

	mu       sync.Mutex
	rrs      map[string][]dns.RR // by lowercase FQDN
	servfail map[string]bool     // lowercase FQDNs answered SERVFAIL
	truncate map[string]bool     // lowercase FQDNs answered truncated over UDP
	delegate map[string]string   // lowercase FQDN of a zone -> "ip:port" it is forwarded to
	sawEDNS  bool
	sawTCP   bool
}

// NewServer starts a Server with no records on one 127.0.0.1 port for both
// UDP and TCP, and shuts it down when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{rrs: map[string][]dns.RR{}, servfail: map[string]bool{}, truncate: map[string]bool{}, delegate: map[string]string{}}
	pc, l := listenUDPAndTCP(t)
	s.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return s
}

// listenUDPAndTCP opens a UDP socket and a TCP listener on the same
// loopback port, retrying when the TCP side of a free UDP port is taken.
func listenUDPAndTCP(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l
		}
		_ = pc.Close()
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil, nil
}

// Addr is the server's "127.0.0.1:port", the same for UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Reset replaces everything served: rrs are records in zone file syntax
// ("host.example. 300 IN CNAME target.example."); servfail and truncate
// are names to answer with SERVFAIL, and truncated over UDP. Delegations
// stay.
func (s *Server) Reset(t testing.TB, rrs, servfail, truncate []string) {
	t.Helper()
	parsed := parse(t, rrs)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rrs, s.servfail, s.truncate = map[string][]dns.RR{}, map[string]bool{}, map[string]bool{}
	for _, rr := range parsed {
		s.addLocked(rr)
	}
	for _, n := range servfail {
		s.servfail[key(n)] = true
	}
	for _, n := range truncate {
		s.truncate[key(n)] = true
	}
}

// Add serves one more record, given in zone file syntax.
func (s *Server) Add(t testing.TB, rr string) {
	t.Helper()
	parsed := parse(t, []string{rr})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addLocked(parsed[0])
}

// PublishCNAME makes host a CNAME to target, replacing any records host
// had, as a customer does at their DNS provider.
func (s *Server) PublishCNAME(host, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := key(host)
	s.rrs[name] = []dns.RR{&dns.CNAME{
		Hdr:    dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: cnameTTL},
		Target: dns.Fqdn(target),
	}}
}

// Remove deletes every record at name; it is then answered NXDOMAIN.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rrs, key(name))
}

// SetServFail makes name answer SERVFAIL (on) or its records again (off).
func (s *Server) SetServFail(name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.servfail[key(name)] = true
	} else {
		delete(s.servfail, key(name))
	}
}

// Delegate forwards every query for zone or a name under it to addr
// ("ip:port", UDP or TCP as the query came) and answers with the reply,
// recursion available and not authoritative, as a recursive resolver does;
// SERVFAIL when addr does not answer. Names set to SERVFAIL or truncation
// keep that behaviour. An empty addr removes the delegation.
func (s *Server) Delegate(zone, addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if addr == "" {
		delete(s.delegate, key(zone))
	} else {
		s.delegate[key(zone)] = addr
	}
}

// SawEDNS reports whether any query so far carried an EDNS(0) OPT record.
func (s *Server) SawEDNS() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sawEDNS
}

// SawTCP reports whether any query so far came over TCP.
func (s *Server) SawTCP() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sawTCP
}

func (s *Server) addLocked(rr dns.RR) {
	name := strings.ToLower(rr.Header().Name)
	s.rrs[name] = append(s.rrs[name], rr)
}

// serve answers one query; see the package comment for what it answers.
func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	resp := s.answer(w, req)
	if resp == nil {
		resp = s.forward(w, req)
	}
	_ = w.WriteMsg(resp)
}

// answer builds the reply from the record set, or returns nil when the
// name is in a delegated zone.
func (s *Server) answer(w dns.ResponseWriter, req *dns.Msg) *dns.Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := new(dns.Msg)
	resp.SetReply(req)
	if req.IsEdns0() != nil {
		s.sawEDNS = true
		resp.SetEdns0(1232, false)
	}
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	s.sawTCP = s.sawTCP || !udp
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	rrs, exists := s.rrs[name]
	switch {
	case s.servfail[name]:
		resp.Rcode = dns.RcodeServerFailure
	case s.truncate[name] && udp:
		resp.Truncated = true
	case s.delegatedLocked(name) != "":
		return nil
	case !exists:
		resp.Rcode = dns.RcodeNameError
	default:
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype || rr.Header().Rrtype == dns.TypeCNAME {
				resp.Answer = append(resp.Answer, rr)
			}
		}
	}
	return resp
}

// delegatedLocked returns the server of the closest delegated zone that
// holds name, or "".
func (s *Server) delegatedLocked(name string) string {
	for n := name; ; {
		if addr, ok := s.delegate[n]; ok {
			return addr
		}
		i := strings.IndexByte(n, '.')
		if i < 0 || i == len(n)-1 {
			return ""
		}
		n = n[i+1:]
	}
}

// forward asks the delegated server for req over the transport req came on.
func (s *Server) forward(w dns.ResponseWriter, req *dns.Msg) *dns.Msg {
	s.mu.Lock()
	addr := s.delegatedLocked(strings.ToLower(req.Question[0].Name))
	s.mu.Unlock()
	network := "udp"
	if _, udp := w.RemoteAddr().(*net.UDPAddr); !udp {
		network = "tcp"
	}
	resp, _, err := (&dns.Client{Net: network, Timeout: forwardTimeout}).Exchange(req.Copy(), addr)
	if err != nil {
		resp = new(dns.Msg)
		resp.SetRcode(req, dns.RcodeServerFailure)
		return resp
	}
	resp.Id = req.Id
	resp.Authoritative, resp.RecursionAvailable = false, true
	return resp
}

// parse reads records in zone file syntax, failing the test on a bad one.
func parse(t testing.TB, rrs []string) []dns.RR {
	t.Helper()
	out := make([]dns.RR, 0, len(rrs))
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil || rr == nil {
			t.Fatalf("bad test record %q: %v", s, err)
		}
		out = append(out, rr)
	}
	return out
}

// key is the map key of a name: lowercase, fully qualified.
func key(name string) string { return dns.Fqdn(strings.ToLower(name)) }
