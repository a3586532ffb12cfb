// Package domains is the sending-domain workflow of sendergate, independent
// of storage and HTTP: it validates and normalizes the domain input, generates
// the CNAME records that delegate DKIM, the bounce (Return-Path) domain, link
// tracking and DMARC to the provider zone, verifies them through DNS with a
// human-readable reason per record, and computes the lifecycle
// (pending, verified, failing, revoked) from the check results.
//
// Standards at the decision points: RFC 1035 and RFC 1123 2.1 (host names),
// RFC 5890/5891 (IDNA: names are stored as A-labels), RFC 2181 10.1 (a CNAME
// owns its name exclusively), RFC 6376 3.6.2.1 (DKIM selectors under
// _domainkey), RFC 7489 6.3 (the DMARC record), RFC 6891 (EDNS0) and RFC 7766
// (DNS over TCP after truncation).
package domains
