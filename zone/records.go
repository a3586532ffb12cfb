package zone

import (
	"net"
	"strings"

	"github.com/miekg/dns"
)

// maxTXTString is the longest character-string of a TXT record (RFC 1035
// 3.3: one length octet).
const maxTXTString = 255

// TXT builds a TXT record for name holding value, split into strings of at
// most 255 bytes; a client joins them back without separators (RFC 7208
// 3.3, RFC 6376 3.6.2.2). The value is taken literally: backslashes are
// escaped for miekg/dns, which would otherwise read them as escapes.
func TXT(name string, ttl uint32, value string) *dns.TXT {
	rr := &dns.TXT{Hdr: header(name, dns.TypeTXT, ttl)}
	for len(value) > maxTXTString {
		rr.Txt = append(rr.Txt, escapeTXT(value[:maxTXTString]))
		value = value[maxTXTString:]
	}
	rr.Txt = append(rr.Txt, escapeTXT(value))
	return rr
}

// escapeTXT escapes the one character miekg/dns interprets when packing a
// TXT string.
func escapeTXT(s string) string {
	return strings.ReplaceAll(s, `\`, `\\`)
}

// MX builds an MX record: name's mail goes to host at preference pref.
func MX(name string, ttl uint32, pref uint16, host string) *dns.MX {
	return &dns.MX{Hdr: header(name, dns.TypeMX, ttl), Preference: pref, Mx: dns.Fqdn(host)}
}

// A builds an A record for an IPv4 address or an AAAA record for an IPv6
// one. It returns nil for an invalid ip; Update skips nil records.
func A(name string, ttl uint32, ip net.IP) dns.RR {
	if v4 := ip.To4(); v4 != nil {
		return &dns.A{Hdr: header(name, dns.TypeA, ttl), A: v4}
	}
	if v6 := ip.To16(); v6 != nil {
		return &dns.AAAA{Hdr: header(name, dns.TypeAAAA, ttl), AAAA: v6}
	}
	return nil
}

func header(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}
