package msg

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Error is a refusal with SMTP reply material: a basic code (RFC 5321 4.2)
// and an enhanced status code (RFC 3463). It keeps this package independent
// of go-smtp; the SMTP and milter front ends convert it with errors.As.
type Error struct {
	Code     int
	Enhanced [3]int
	Message  string
}

// Error formats the refusal as an SMTP reply line without the CRLF.
func (e *Error) Error() string {
	return fmt.Sprintf("%d %d.%d.%d %s", e.Code, e.Enhanced[0], e.Enhanced[1], e.Enhanced[2], e.Message)
}

// ErrLineTooLong is returned (possibly wrapped with the line number) when a
// header line exceeds 998 octets, excluding the CRLF (RFC 5322 2.1.1).
// Signing such a line would produce a signature that a later hop breaks
// when it wraps the line, so the message is refused instead.
var ErrLineTooLong = &Error{
	Code:     550,
	Enhanced: [3]int{5, 6, 0},
	Message:  "message has a header line longer than 998 octets (RFC 5322 2.1.1); fold it",
}

// ErrHeaderTooLarge is returned when the header block exceeds MaxHeaderBytes.
var ErrHeaderTooLarge = &Error{
	Code:     552,
	Enhanced: [3]int{5, 3, 4},
	Message:  "message header is larger than 1 MiB",
}

// invalidf returns a 550 5.6.0 refusal (RFC 3463: other or undefined media
// error), the reply for a message whose content is not RFC 5322. The text
// is made printable ASCII, since it may quote the client's bytes and SMTP
// reply text is ASCII without line breaks (RFC 5321 4.2).
func invalidf(format string, args ...any) *Error {
	return &Error{Code: 550, Enhanced: [3]int{5, 6, 0}, Message: printable(fmt.Sprintf(format, args...))}
}

// printable escapes every byte of s that is not printable ASCII: runes as
// \uXXXX, invalid UTF-8 as \xXX.
func printable(s string) string {
	ok := true
	for i := 0; i < len(s) && ok; i++ {
		ok = s[i] >= ' ' && s[i] <= '~'
	}
	if ok {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[0])
		case r >= ' ' && r <= '~':
			b.WriteRune(r)
		case r > 0xFFFF:
			fmt.Fprintf(&b, "\\U%08x", r)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
		s = s[size:]
	}
	return b.String()
}
