package msg

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sendergate/sendergate/dnsname"
)

// NormalizeAddress normalises an addr-spec for comparison: the local part
// is kept as is, the domain goes through dnsname.Normalize (lowercase, no
// trailing dot, IDN U-labels as A-labels; mapped and invisible characters
// refused). It returns the normalised address and its domain. Address
// literals and domains that are not valid host names fail with an error
// naming the address.
func NormalizeAddress(addr string) (normalized, domain string, err error) {
	normalized, domain, err = normalizeAddress(addr)
	if err != nil {
		return "", "", fmt.Errorf("msg: address %q: %w", addr, err)
	}
	return normalized, domain, nil
}

// normalizeAddress is NormalizeAddress with an error that does not repeat
// the address.
func normalizeAddress(addr string) (normalized, domain string, err error) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", "", errors.New("want local-part@domain")
	}
	domain, err = dnsname.Normalize(addr[at+1:])
	if err != nil {
		return "", "", err
	}
	return addr[:at] + "@" + domain, domain, nil
}

// NormalizeDomain returns the lowercase A-label form of a host name without
// trailing dot, or an error when it is not a valid host name; it is
// dnsname.Normalize, the one normalizer that domain registration and the
// configuration use too.
func NormalizeDomain(d string) (string, error) {
	return dnsname.Normalize(d)
}
