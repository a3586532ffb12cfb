package domains

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Resolver looks up what is published at a customer's host name and at the
// provider-zone name its CNAME points to. It is the one seam over miekg/dns.
type Resolver interface {
	LookupCNAME(ctx context.Context, host string) (Answer, error)
	// Lookup asks for the records of type typ ("TXT", "MX", "A" or "AAAA")
	// at name, as a receiver would: with recursion desired, so a resolver
	// that follows a CNAME answers with the data at its end.
	Lookup(ctx context.Context, name, typ string) (Data, error)
}

// Data is the answer to Lookup. Rcode is dns.RcodeSuccess or
// dns.RcodeNameError; Values holds the records of the asked type in
// answer order, each as Served.Value writes it (TXT strings joined, MX
// "PREF HOST" with a canonical host, addresses as text). No Values with
// RcodeSuccess is "no data" (RFC 2308 2.2).
type Data struct {
	Rcode  int
	Values []string
}

// Answer is what a resolver found at a name. Rcode is the DNS response code
// (dns.RcodeSuccess or dns.RcodeNameError). CNAME is the target without
// trailing dot, lowercased, or "" when the name has no CNAME. Other lists the
// records found at the name instead of a CNAME, such as "A 192.0.2.1" or
// `TXT "v=DMARC1; p=none"`.
type Answer struct {
	Rcode int
	CNAME string
	Other []string
}

// ErrTransient marks a lookup that got no definite answer (SERVFAIL,
// REFUSED, timeout, network error); errors from DNSResolver wrap it.
var ErrTransient = errors.New("transient DNS failure")

// DNSResolver asks recursive resolvers with miekg/dns.
type DNSResolver struct {
	servers []string
	udp     *dns.Client
	tcp     *dns.Client
}

var _ Resolver = (*DNSResolver)(nil)

// ResolvConf is the file NewDNSResolver reads when no servers are given.
const ResolvConf = "/etc/resolv.conf"

// NewDNSResolver returns a resolver that asks servers ("ip:port"; ":53" is
// added when the port is missing) in order, over UDP and over TCP when a
// reply is truncated (RFC 7766), with recursion desired and EDNS0 (RFC 6891).
// timeout bounds each exchange. No servers means those of /etc/resolv.conf.
func NewDNSResolver(servers []string, timeout time.Duration) (*DNSResolver, error) {
	if len(servers) == 0 {
		cfg, err := dns.ClientConfigFromFile(ResolvConf)
		if err != nil {
			return nil, fmt.Errorf("dns resolvers: %w", err)
		}
		for _, s := range cfg.Servers {
			servers = append(servers, net.JoinHostPort(s, cfg.Port))
		}
		if len(servers) == 0 {
			return nil, fmt.Errorf("dns resolvers: no nameserver in %s", ResolvConf)
		}
	}
	r := &DNSResolver{
		udp: &dns.Client{Net: "udp", Timeout: timeout},
		tcp: &dns.Client{Net: "tcp", Timeout: timeout},
	}
	for _, s := range servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			s = net.JoinHostPort(strings.Trim(s, "[]"), "53")
		}
		r.servers = append(r.servers, s)
	}
	return r, nil
}

// Servers returns the resolvers asked, in order, as "ip:port".
func (r *DNSResolver) Servers() []string { return append([]string(nil), r.servers...) }

// LookupCNAME asks for the CNAME at host. When the name exists without one,
// it also asks for A, AAAA and TXT so that a flattened CNAME or a TXT record
// in its place can be reported in Answer.Other.
func (r *DNSResolver) LookupCNAME(ctx context.Context, host string) (Answer, error) {
	resp, err := r.query(ctx, host, dns.TypeCNAME)
	if err != nil {
		return Answer{}, err
	}
	ans := Answer{Rcode: resp.Rcode}
	for _, rr := range answersAt(resp, host) {
		if c, ok := rr.(*dns.CNAME); ok {
			ans.CNAME = canonical(c.Target)
			return ans, nil
		}
	}
	if resp.Rcode != dns.RcodeSuccess {
		return ans, nil
	}
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT} {
		resp, err := r.query(ctx, host, t)
		if err != nil {
			continue // a hint only: the CNAME answer above is definite
		}
		for _, rr := range answersAt(resp, host) {
			if rr.Header().Rrtype == t {
				ans.Other = append(ans.Other, describeRR(rr))
			}
		}
	}
	return ans, nil
}

// lookupTypes maps the record types Lookup serves to their DNS codes.
var lookupTypes = map[string]uint16{"TXT": dns.TypeTXT, "MX": dns.TypeMX, "A": dns.TypeA, "AAAA": dns.TypeAAAA}

// Lookup asks for the records of type typ at name. It keeps every answer
// record of that type whatever its owner, since a recursive resolver
// answers a name that is a CNAME with the chain and the data at its end
// (RFC 1034 3.6.2). Errors wrap ErrTransient, except an unknown typ.
func (r *DNSResolver) Lookup(ctx context.Context, name, typ string) (Data, error) {
	qtype, ok := lookupTypes[typ]
	if !ok {
		return Data{}, fmt.Errorf("dns lookup: unsupported record type %q", typ)
	}
	resp, err := r.query(ctx, name, qtype)
	if err != nil {
		return Data{}, err
	}
	d := Data{Rcode: resp.Rcode}
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype == qtype {
			d.Values = append(d.Values, servedValue(rr))
		}
	}
	return d, nil
}

// servedValue writes the data of a TXT, MX, A or AAAA record as Served.Value
// holds it: a TXT record's strings are joined without a separator, as
// DKIM (RFC 6376 3.6.2.2) and SPF (RFC 7208 3.3) read them.
func servedValue(rr dns.RR) string {
	switch v := rr.(type) {
	case *dns.TXT:
		return strings.Join(v.Txt, "")
	case *dns.MX:
		return fmt.Sprintf("%d %s", v.Preference, canonical(v.Mx))
	case *dns.A:
		return v.A.String()
	case *dns.AAAA:
		return v.AAAA.String()
	}
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}

// query sends one question to each server in turn until one answers
// NOERROR or NXDOMAIN.
func (r *DNSResolver) query(ctx context.Context, host string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(host), qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false)
	var last error
	for _, srv := range r.servers {
		resp, err := r.exchange(ctx, m, srv)
		switch {
		case err != nil:
			last = err
		case resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError:
			return resp, nil
		default:
			last = fmt.Errorf("%s answered %s", srv, dns.RcodeToString[resp.Rcode])
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w: %s %s: %w", ErrTransient, dns.TypeToString[qtype], host, last)
}

func (r *DNSResolver) exchange(ctx context.Context, m *dns.Msg, server string) (*dns.Msg, error) {
	resp, _, err := r.udp.ExchangeContext(ctx, m, server)
	if err == nil && resp.Truncated {
		resp, _, err = r.tcp.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", server, err)
	}
	return resp, nil
}

// answersAt returns the answer records owned by host itself.
func answersAt(resp *dns.Msg, host string) []dns.RR {
	var out []dns.RR
	for _, rr := range resp.Answer {
		if strings.EqualFold(rr.Header().Name, dns.Fqdn(host)) {
			out = append(out, rr)
		}
	}
	return out
}

func describeRR(rr dns.RR) string {
	typ := dns.TypeToString[rr.Header().Rrtype]
	switch v := rr.(type) {
	case *dns.A:
		return typ + " " + v.A.String()
	case *dns.AAAA:
		return typ + " " + v.AAAA.String()
	case *dns.TXT:
		return fmt.Sprintf("%s %q", typ, strings.Join(v.Txt, ""))
	}
	return typ + " " + strings.TrimPrefix(rr.String(), rr.Header().String())
}

// canonical lowercases a name and removes its trailing dot: case and the
// final dot never make two names differ.
func canonical(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}
