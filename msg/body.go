package msg

import "bytes"

// CheckBody checks the line structure of a message body before it is signed
// and handed to the upstream, and returns a 550 5.6.0 *Error naming the
// first problem and its line:
//
//   - a bare CR, a CR not followed by LF (RFC 5322 2.3: CR and LF occur
//     only together). Some servers take a bare CR for a line ending and
//     others do not, which is how "\r.\r" ends a message early at one hop
//     and smuggles a second message past the next (SMTP smuggling, 2023).
//     Nothing with a bare CR reaches the upstream.
//   - a line longer than MaxLineOctets (998) octets, excluding its line
//     ending (RFC 5322 2.1.1). A hop that wraps such a line breaks the DKIM
//     signature (RFC 6376 5.3), so the message is refused rather than
//     signed.
//
// A bare LF is a line ending: it is accepted (many clients send one) and
// the caller converts it to CRLF before signing, as the submission server
// does; converting first or afterwards gives CheckBody the same answer.
//
// CheckBody makes one pass over body (two vectorized byte searches per
// line) and allocates only for the refusal.
func CheckBody(body []byte) error {
	for line := 1; len(body) > 0; line++ {
		n := bytes.IndexByte(body, '\n')
		end := n // the line without its LF or CRLF
		if n < 0 {
			end = len(body)
		} else if n > 0 && body[n-1] == '\r' {
			end = n - 1
		}
		if bytes.IndexByte(body[:end], '\r') >= 0 {
			return invalidf("message body line %d contains a bare CR (a CR not followed by LF), which servers read differently (SMTP smuggling); end every line with CRLF (RFC 5322 2.3)", line)
		}
		if end > MaxLineOctets {
			return invalidf("message body line %d is %d octets long; lines over %d octets break DKIM at the next hop that folds them (RFC 5322 2.1.1): send long lines quoted-printable or base64 encoded", line, end, MaxLineOctets)
		}
		if n < 0 {
			break
		}
		body = body[n+1:]
	}
	return nil
}
