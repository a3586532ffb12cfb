// Package zone is the authoritative DNS server for sendergate's provider
// zone: the names customer CNAMEs point at (SEL.T.dkim.Z, T.bounce.Z,
// track.Z, T.dmarc.Z, the sandbox domains).
//
// It serves one zone over UDP and TCP with miekg/dns: the DNS protocol of
// RFC 1034 and RFC 1035, negative answers as RFC 2308 describes them, empty
// non-terminals as RFC 8020 requires, EDNS(0) per RFC 6891, and full zone
// transfers (AXFR, RFC 5936) to configured secondaries. Records are replaced
// wholesale by Update, which bumps the SOA serial; queries read an immutable
// snapshot, so serving never waits for an update.
package zone

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DefaultTTL is the TTL of the generated SOA and NS records and of records
// given to Update with a TTL of zero, when Config.TTL is zero.
const DefaultTTL = 300

// SOA timers (RFC 1035 3.3.13), in seconds: conventional values for a zone
// whose secondaries also receive transfers on demand.
const (
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 1209600
)

// Config describes the served zone.
type Config struct {
	// Zone is the apex, e.g. "sg.localhost"; a trailing dot is optional and
	// case does not matter.
	Zone string
	// Nameservers are the NS targets published at the apex; the first one is
	// the SOA MNAME. At least one is required.
	Nameservers []string
	// AllowTransfer lists the IP addresses or CIDR prefixes allowed to AXFR
	// the zone. Empty refuses every transfer.
	AllowTransfer []string
	// TTL of the SOA and NS records, the negative-caching TTL (SOA MINIMUM,
	// RFC 2308) and the TTL of records given to Update with none. Zero means
	// DefaultTTL.
	TTL uint32
	// Logger receives refused transfers and listener errors; nil discards.
	Logger *slog.Logger
}

// Server answers queries for one zone. Create it with New; it is ready to
// answer through ServeDNS at once, and Start adds listeners.
type Server struct {
	origin      string // lowercase FQDN of the apex
	nameservers []string
	transfer    []netip.Prefix
	ttl         uint32
	log         *slog.Logger

	data atomic.Pointer[zoneData] // the snapshot queries read

	updateMu sync.Mutex // serializes Update's serial bump and swap

	listenMu sync.Mutex
	udp, tcp *dns.Server
}

// zoneData is an immutable snapshot of the zone.
type zoneData struct {
	soa *dns.SOA
	// nodes maps every name that exists in the zone (lowercase FQDN) to its
	// RRsets by type. Empty non-terminals are present with an empty map, so
	// they answer NODATA rather than NXDOMAIN (RFC 8020).
	nodes map[string]map[uint16][]dns.RR
	// ordered holds every record except the SOA, apex NS first, for AXFR.
	ordered []dns.RR
}

// New validates cfg and returns a server for an empty zone (SOA and NS at
// the apex only).
func New(cfg Config) (*Server, error) {
	origin, err := normalizeName(cfg.Zone)
	if err != nil || origin == "." {
		return nil, fmt.Errorf("zone: invalid zone %q", cfg.Zone)
	}
	if len(cfg.Nameservers) == 0 {
		return nil, errors.New("zone: at least one nameserver is required")
	}
	s := &Server{origin: origin, ttl: cfg.TTL, log: cfg.Logger}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, ns := range cfg.Nameservers {
		name, err := normalizeName(ns)
		if err != nil || name == "." {
			return nil, fmt.Errorf("zone: invalid nameserver %q", ns)
		}
		s.nameservers = append(s.nameservers, name)
	}
	for _, a := range cfg.AllowTransfer {
		p, err := parsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("zone: allow_transfer: %w", err)
		}
		s.transfer = append(s.transfer, p)
	}
	s.data.Store(s.build(nil, initialSerial(0)))
	return s, nil
}

// normalizeName returns name as a lowercase FQDN, or an error when it is not
// a syntactically valid domain name.
func normalizeName(name string) (string, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" {
		return "", errors.New("empty name")
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return "", fmt.Errorf("invalid domain name %q", name)
	}
	return dns.Fqdn(name), nil
}

// parsePrefix accepts "192.0.2.1", "2001:db8::1" or "192.0.2.0/24".
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid prefix %q: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address %q: %w", s, err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// initialSerial returns the serial following prev: the current Unix time
// when that is larger, so serials keep growing across restarts and
// secondaries notice the new content, else prev+1.
func initialSerial(prev uint32) uint32 {
	now := uint32(time.Now().Unix())
	if now > prev {
		return now
	}
	return prev + 1
}

// Serial returns the current SOA serial.
func (s *Server) Serial() uint32 {
	return s.data.Load().soa.Serial
}

// Origin returns the apex as a lowercase FQDN, e.g. "sg.localhost.".
func (s *Server) Origin() string {
	return s.origin
}

// Update atomically replaces every record of the zone except the apex SOA
// and NS, which are generated, and bumps the SOA serial. Names are fully
// qualified, with or without the trailing dot, in any case. Records outside
// the zone, SOA and NS records, and nil entries are skipped (and logged); a
// record with TTL zero gets the zone TTL. The records are copied: the caller
// may reuse rrs. Safe to call concurrently with serving.
func (s *Server) Update(rrs []dns.RR) {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	next := s.build(rrs, initialSerial(s.Serial()))
	s.data.Store(next)
	s.log.Debug("zone updated", "zone", s.origin, "serial", next.soa.Serial, "records", len(next.ordered))
}

// build makes a snapshot holding the generated apex records and rrs.
func (s *Server) build(rrs []dns.RR, serial uint32) *zoneData {
	d := &zoneData{nodes: make(map[string]map[uint16][]dns.RR)}
	d.soa = &dns.SOA{
		Hdr:     dns.RR_Header{Name: s.origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.ttl},
		Ns:      s.nameservers[0],
		Mbox:    "hostmaster." + s.origin,
		Serial:  serial,
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  s.ttl,
	}
	d.add(s.origin, d.soa)
	for _, ns := range s.nameservers {
		rr := &dns.NS{Hdr: dns.RR_Header{Name: s.origin, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: s.ttl}, Ns: ns}
		d.add(s.origin, rr)
		d.ordered = append(d.ordered, rr)
	}
	for _, rr := range rrs {
		if rr := s.accept(rr); rr != nil {
			d.add(rr.Header().Name, rr)
			d.ordered = append(d.ordered, rr)
			d.addAncestors(rr.Header().Name, s.origin)
		}
	}
	return d
}

// accept returns a normalized copy of rr, or nil when rr does not belong in
// the zone's data.
func (s *Server) accept(rr dns.RR) dns.RR {
	if rr == nil {
		return nil
	}
	h := rr.Header()
	name, err := normalizeName(h.Name)
	switch {
	case err != nil:
		s.log.Warn("zone update: skipping record with invalid name", "record", rr.String(), "error", err)
		return nil
	case !dns.IsSubDomain(s.origin, name):
		s.log.Warn("zone update: skipping record outside the zone", "zone", s.origin, "record", rr.String())
		return nil
	case h.Rrtype == dns.TypeSOA || h.Rrtype == dns.TypeNS:
		s.log.Warn("zone update: skipping generated type (SOA/NS)", "record", rr.String())
		return nil
	}
	rr = dns.Copy(rr)
	h = rr.Header()
	h.Name = name
	if h.Class == 0 {
		h.Class = dns.ClassINET
	}
	if h.Ttl == 0 {
		h.Ttl = s.ttl
	}
	return rr
}

func (d *zoneData) add(name string, rr dns.RR) {
	sets := d.nodes[name]
	if sets == nil {
		sets = make(map[uint16][]dns.RR)
		d.nodes[name] = sets
	}
	t := rr.Header().Rrtype
	sets[t] = append(sets[t], rr)
}

// addAncestors records every name between name and the apex as existing
// (RFC 8020: an empty non-terminal exists and answers NODATA).
func (d *zoneData) addAncestors(name, origin string) {
	for off, end := dns.NextLabel(name, 0); !end; off, end = dns.NextLabel(name, off) {
		parent := name[off:]
		if len(parent) < len(origin) {
			return
		}
		if _, ok := d.nodes[parent]; ok {
			return // its ancestors were added with it
		}
		d.nodes[parent] = map[uint16][]dns.RR{}
	}
}

// mayTransfer reports whether addr is listed in AllowTransfer.
func (s *Server) mayTransfer(addr net.Addr) bool {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.transfer {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
