package msg

import (
	"crypto/rand"
	"net/netip"
	"strings"
	"time"
)

// TraceInfo is what the Received trace field records (RFC 5321 4.4).
type TraceInfo struct {
	Helo       string    // the client's EHLO/HELO argument
	RemoteIP   string    // the client's IP address
	Hostname   string    // this server's name; Prepare's hostname when empty
	ID         string    // the transaction ID that also appears in the logs
	Protocol   string    // "ESMTPSA" (TLS and AUTH), "ESMTPA", "ESMTPS", "ESMTP" (RFC 3848)
	Recipients []string  // envelope recipients; named only when there is exactly one
	Time       time.Time // time of receipt; now when zero
}

// Prepare applies the submission rewrites: it deletes every Return-Path
// field (RFC 5321 4.4: only the final delivery adds one), adds Message-ID
// (<random@hostname>, RFC 5322 3.6.4) and Date (RFC 5322 3.6.1, now) when
// missing, and prepends a Received trace field (RFC 5321 4.4) built from t.
func Prepare(h *Header, hostname string, t TraceInfo, now time.Time) {
	h.Del("Return-Path")
	if hostname == "" {
		hostname = "localhost"
	}
	if len(h.Get("Message-ID")) == 0 {
		h.Add("Message-ID", "<"+strings.ToLower(rand.Text())+"@"+traceToken(hostname)+">")
	}
	if len(h.Get("Date")) == 0 {
		h.Add("Date", now.Format(time.RFC1123Z))
	}
	if t.Hostname == "" {
		t.Hostname = hostname
	}
	if t.Time.IsZero() {
		t.Time = now
	}
	h.Prepend(received(t))
}

// received formats the trace field:
//
//	Received: from HELO ([IP])
//		by HOSTNAME with ESMTPSA id ID
//		for <rcpt>; DATE
//
// The "for" clause names the recipient only when there is one, so Bcc
// recipients are not disclosed to each other.
func received(t TraceInfo) []byte {
	helo := traceToken(t.Helo)
	if helo == "" {
		helo = "unknown"
	}
	proto := traceToken(t.Protocol)
	if proto == "" {
		proto = "ESMTP"
	}
	var b strings.Builder
	b.WriteString("Received: from " + helo)
	if lit := addressLiteral(t.RemoteIP); lit != "" {
		b.WriteString(" (" + lit + ")")
	}
	b.WriteString("\r\n\tby " + traceToken(t.Hostname) + " with " + proto)
	if id := traceToken(t.ID); id != "" {
		b.WriteString(" id " + id)
	}
	if len(t.Recipients) == 1 {
		b.WriteString("\r\n\tfor <" + traceToken(t.Recipients[0]) + ">")
	}
	b.WriteString(";\r\n\t" + t.Time.Format(time.RFC1123Z) + "\r\n")
	return []byte(b.String())
}

// addressLiteral formats ip as an RFC 5321 4.1.3 address literal, or ""
// when ip does not parse.
func addressLiteral(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	if a.Is6() {
		return "[IPv6:" + a.WithZone("").String() + "]"
	}
	return "[" + a.String() + "]"
}

// traceToken keeps client-supplied text from breaking the trace field:
// anything but printable ASCII, and the delimiters ( ) < > ; are replaced
// with "?".
func traceToken(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' || strings.ContainsRune("()<>;", r) {
			return '?'
		}
		return r
	}, s)
}
