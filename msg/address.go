package msg

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"
)

// NormalizeAddress normalises an addr-spec for comparison: the local part
// is kept as is, the domain is lowercased, a trailing dot is removed and
// IDN U-labels become A-labels (RFC 5891 5, RFC 3492 punycode). It returns
// the normalised address and its domain. Address literals and domains that
// are not valid host names fail with an error naming the address.
//
// The mapping is the UTS #46 Lookup profile of golang.org/x/net/idna; input
// it cannot map is refused, never mapped to another domain, so the policy
// fails closed.
func NormalizeAddress(addr string) (normalized, domain string, err error) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", "", fmt.Errorf("msg: address %q: want local-part@domain", addr)
	}
	domain, err = NormalizeDomain(addr[at+1:])
	if err != nil {
		return "", "", fmt.Errorf("msg: address %q: %w", addr, err)
	}
	return addr[:at] + "@" + domain, domain, nil
}

// NormalizeDomain returns the lowercase A-label form of a host name without
// trailing dot, or an error when it is not a valid host name (RFC 1123 2.1,
// RFC 5890 2.3.2.1).
func NormalizeDomain(d string) (string, error) {
	if strings.HasPrefix(d, "[") {
		return "", errors.New("an address literal is not a domain")
	}
	d = strings.TrimSuffix(strings.ToLower(d), ".")
	if d == "" {
		return "", errors.New("empty domain")
	}
	out, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("domain %q: %w", d, err)
	}
	out = strings.TrimSuffix(out, ".")
	if out == "" || len(out) > 253 {
		return "", errors.New("domain empty or longer than 253 octets")
	}
	for _, l := range strings.Split(out, ".") {
		if l == "" || len(l) > 63 {
			return "", fmt.Errorf("domain %q: empty label or label longer than 63 octets", d)
		}
	}
	return out, nil
}
