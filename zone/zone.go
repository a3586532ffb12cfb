// Package zone is the authoritative DNS server for sendergate's provider
// zone: the names customer CNAMEs point at (SEL.T.dkim.Z, T.bounce.Z,
// track.Z, T.dmarc.Z, the sandbox domains).
//
// It serves one zone over UDP and TCP with miekg/dns: the DNS protocol of
// RFC 1034 and RFC 1035, negative answers as RFC 2308 describes them, empty
// non-terminals as RFC 8020 requires, EDNS(0) per RFC 6891, full zone
// transfers (AXFR, RFC 5936) and incremental ones (IXFR, RFC 1995) to
// configured secondaries, which it tells about every change with NOTIFY
// (RFC 1996).
//
// The SOA serial is a content version: Update takes the serial from the
// caller (derived from the data, so every instance serving the same data
// serves the same serial), keeps the current one when the records did not
// change, and journals each change so secondaries can catch up
// incrementally. Queries read an immutable snapshot, so serving never waits
// for an update. Update replaces the whole zone (the first load); Patch
// applies a change in time proportional to the change: the names are split
// into shards by a hash of the owner name, and a change copies only the
// shards it touches.
package zone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultTTL is the TTL of the generated SOA, NS and address records and of
// records given to Update with a TTL of zero, when Config.TTL is zero.
const DefaultTTL = 300

// DefaultJournalSize is the number of changes kept for IXFR when
// Config.JournalSize is zero.
const DefaultJournalSize = 64

// Default SOA timers (RFC 1035 3.3.13), used for zero Config fields:
// conventional values for a zone whose secondaries are sent NOTIFY.
const (
	DefaultRefresh = time.Hour
	DefaultRetry   = 10 * time.Minute
	DefaultExpire  = 14 * 24 * time.Hour
)

// Config describes the served zone.
type Config struct {
	// Zone is the apex, e.g. "sg.localhost"; a trailing dot is optional and
	// case does not matter.
	Zone string
	// Nameservers are the NS targets published at the apex; the first one is
	// the SOA MNAME. At least one is required.
	Nameservers []string
	// NameserverAddresses are the A/AAAA records (glue) served for in-zone
	// name servers, keyed by a name of Nameservers. A secondary refuses a
	// zone whose in-zone NS names have no address.
	NameserverAddresses map[string][]string
	// BounceMX is the MX target of bounce domains. When it is inside the
	// zone, BounceMXAddresses are served as its A/AAAA records.
	BounceMX          string
	BounceMXAddresses []string
	// AllowTransfer lists the IP addresses or CIDR prefixes allowed to
	// AXFR and IXFR the zone. Empty refuses every transfer.
	AllowTransfer []string
	// Notify lists the secondaries ("ip:port") sent a NOTIFY (RFC 1996)
	// after each change of the zone, once Start has been called.
	Notify []string
	// TTL of the SOA, NS and address records and of records given to Update
	// with none. Zero means DefaultTTL.
	TTL uint32
	// SOA timers, whole seconds; zero means DefaultRefresh, DefaultRetry,
	// DefaultExpire and, for Minimum (the negative-caching TTL, RFC 2308),
	// TTL.
	Refresh, Retry, Expire, Minimum time.Duration
	// JournalSize bounds the changes kept for IXFR; zero means
	// DefaultJournalSize. The journal is also never larger than the zone.
	JournalSize int
	// Logger receives transfers, refused transfers, NOTIFY failures and
	// listener errors; nil discards.
	Logger *slog.Logger
	// Registerer receives the sendergate_zone_* metrics; nil: none.
	Registerer prometheus.Registerer
}

// Server answers queries for one zone. Create it with New; it is ready to
// answer through ServeDNS at once, and Start adds listeners and the NOTIFY
// sender.
type Server struct {
	origin      string // lowercase FQDN of the apex
	nameservers []string
	generated   []dns.RR // address records from the config
	fixed       []dns.RR // the apex NS records and generated: in every version of the zone
	transfer    []netip.Prefix
	ttl         uint32
	timers      [4]uint32 // refresh, retry, expire, minimum
	journalSize int
	log         *slog.Logger
	metrics     metrics

	data atomic.Pointer[zoneData] // the snapshot queries read

	updateMu sync.Mutex // serializes Update and Patch: compare, serial choice and swap

	notify        []notifyTarget
	notifyTimeout time.Duration // per attempt
	notifyBackoff time.Duration // before the second attempt, doubled after
	notifyTries   int

	listenMu   sync.Mutex
	udp, tcp   *dns.Server
	stopNotify context.CancelFunc
	notifyDone sync.WaitGroup
}

// New validates cfg and returns a server for an empty zone: SOA (serial 0),
// NS and the configured address records only, until the first Update.
func New(cfg Config) (*Server, error) {
	origin, err := normalizeName(cfg.Zone)
	if err != nil || origin == "." {
		return nil, fmt.Errorf("zone: invalid zone %q", cfg.Zone)
	}
	if len(cfg.Nameservers) == 0 {
		return nil, errors.New("zone: at least one nameserver is required")
	}
	s := &Server{origin: origin, ttl: cfg.TTL, log: cfg.Logger, journalSize: cfg.JournalSize,
		notifyTimeout: 2 * time.Second, notifyBackoff: time.Second, notifyTries: 5}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.journalSize <= 0 {
		s.journalSize = DefaultJournalSize
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.timers = [4]uint32{seconds(cfg.Refresh, DefaultRefresh), seconds(cfg.Retry, DefaultRetry),
		seconds(cfg.Expire, DefaultExpire), seconds(cfg.Minimum, time.Duration(s.ttl)*time.Second)}
	for _, ns := range cfg.Nameservers {
		name, err := normalizeName(ns)
		if err != nil || name == "." {
			return nil, fmt.Errorf("zone: invalid nameserver %q", ns)
		}
		s.nameservers = append(s.nameservers, name)
	}
	if err := s.addressRecords(cfg); err != nil {
		return nil, err
	}
	for _, a := range cfg.AllowTransfer {
		p, err := parsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("zone: allow_transfer: %w", err)
		}
		s.transfer = append(s.transfer, p)
	}
	for _, n := range cfg.Notify {
		ap, err := netip.ParseAddrPort(strings.TrimSpace(n))
		if err != nil {
			return nil, fmt.Errorf("zone: notify: %q must be ip:port: %w", n, err)
		}
		s.notify = append(s.notify, notifyTarget{addr: ap, kick: make(chan struct{}, 1)})
	}
	if err := s.metrics.register(cfg.Registerer, s); err != nil {
		return nil, err
	}
	for _, ns := range s.nameservers {
		s.fixed = append(s.fixed, &dns.NS{Hdr: header(s.origin, dns.TypeNS, s.ttl), Ns: ns})
	}
	s.fixed = append(s.fixed, s.generated...)
	z := s.build(nil)
	s.data.Store(&zoneData{soa: s.soaRecord(0), shards: z, records: z.count()})
	return s, nil
}

// addressRecords validates the glue and bounce MX addresses of cfg and
// keeps them as generated records. It warns about in-zone names left
// without an address, which secondaries (named-checkzone) reject.
func (s *Server) addressRecords(cfg Config) error {
	glue := make(map[string][]string)
	for name, ips := range cfg.NameserverAddresses {
		n, err := normalizeName(name)
		switch {
		case err != nil:
			return fmt.Errorf("zone: nameserver_addresses: %w", err)
		case !containsName(s.nameservers, n):
			return fmt.Errorf("zone: nameserver_addresses: %q is not one of the nameservers", name)
		case !dns.IsSubDomain(s.origin, n):
			return fmt.Errorf("zone: nameserver_addresses: %q is outside zone %s: publish its addresses in its own zone", name, s.origin)
		}
		glue[n] = append(glue[n], ips...)
	}
	level := slog.LevelInfo
	if len(cfg.Notify) > 0 {
		level = slog.LevelWarn // secondaries are configured: they will refuse the zone
	}
	for _, ns := range s.nameservers {
		if !dns.IsSubDomain(s.origin, ns) {
			continue
		}
		if len(glue[ns]) == 0 {
			s.log.Log(context.Background(), level, "zone: in-zone name server has no address; secondaries and the parent's delegation need one (dns.nameserver_addresses)", "zone", s.origin, "nameserver", ns)
			continue
		}
		if err := s.addAddresses(ns, glue[ns]); err != nil {
			return fmt.Errorf("zone: nameserver_addresses %q: %w", ns, err)
		}
	}
	if cfg.BounceMX == "" {
		if len(cfg.BounceMXAddresses) > 0 {
			return errors.New("zone: bounce_mx_addresses set without bounce_mx")
		}
		return nil
	}
	mx, err := normalizeName(cfg.BounceMX)
	if err != nil {
		return fmt.Errorf("zone: bounce_mx: %w", err)
	}
	switch inZone := dns.IsSubDomain(s.origin, mx); {
	case !inZone && len(cfg.BounceMXAddresses) > 0:
		return fmt.Errorf("zone: bounce_mx_addresses: bounce_mx %q is outside zone %s: publish its addresses in its own zone", cfg.BounceMX, s.origin)
	case inZone && len(cfg.BounceMXAddresses) == 0:
		s.log.Log(context.Background(), level, "zone: in-zone bounce_mx has no address; mail to bounce domains cannot be delivered and secondaries (named-checkzone) refuse the zone (dns.bounce_mx_addresses)", "zone", s.origin, "bounce_mx", mx)
	}
	if err := s.addAddresses(mx, cfg.BounceMXAddresses); err != nil {
		return fmt.Errorf("zone: bounce_mx_addresses: %w", err)
	}
	return nil
}

// addAddresses appends A/AAAA records for name to the generated records.
func (s *Server) addAddresses(name string, ips []string) error {
	for _, ip := range ips {
		a, err := netip.ParseAddr(strings.TrimSpace(ip))
		if err != nil {
			return fmt.Errorf("invalid address %q: %w", ip, err)
		}
		s.generated = append(s.generated, A(name, s.ttl, net.IP(a.Unmap().AsSlice())))
	}
	return nil
}

func containsName(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// seconds converts a timer to whole seconds, def when zero, clamped to the
// SOA field's range.
func seconds(d, def time.Duration) uint32 {
	if d <= 0 {
		d = def
	}
	return uint32(min(max(d/time.Second, 1), math.MaxUint32))
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

// Serial returns the current SOA serial.
func (s *Server) Serial() uint32 {
	return s.data.Load().soa.Serial
}

// Origin returns the apex as a lowercase FQDN, e.g. "sg.localhost.".
func (s *Server) Origin() string {
	return s.origin
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
