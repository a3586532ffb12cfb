package milter

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/sendergate/sendergate/msg"
)

// maxHeaderFields bounds how many header fields one message may carry.
const maxHeaderFields = 1000

// maxRecipients bounds the recipients kept per message (for the sandbox
// count); Postfix's smtpd_recipient_limit is 1000 by default.
const maxRecipients = 1000

// fieldFromMilter rebuilds the raw header field "Name: value\r\n" from a
// milter SMFIC_HEADER packet. Postfix sends the value without the one
// leading space after the colon (SMFIP_HDR_LEADSPC is not negotiated) and
// with folded lines joined by a bare LF followed by the original SP or TAB.
// The rebuilt field can differ from the transmitted one only in whitespace
// around the colon, which relaxed header canonicalization (RFC 6376 3.4.2)
// ignores: the signature computed over it stays valid once Postfix writes
// the message.
//
// A name that is not a field name (RFC 5322 3.6.8), a line break that is
// not a fold (it would inject a field), a NUL or a line over 998 octets
// (RFC 5322 2.1.1) is refused with a 550 5.6.0 *msg.Error.
func fieldFromMilter(name, value string) (msg.Field, error) {
	if name == "" {
		return msg.Field{}, invalid("header field without a name (RFC 5322 2.2)")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return msg.Field{}, invalid("header field name %q is not valid (RFC 5322 3.6.8)", name)
		}
	}
	value = strings.ReplaceAll(value, "\r\n", "\n")
	var b bytes.Buffer
	b.Grow(len(name) + len(value) + 4)
	b.WriteString(name)
	b.WriteString(": ")
	lineStart := 0
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\n':
			if i+1 >= len(value) || (value[i+1] != ' ' && value[i+1] != '\t') {
				return msg.Field{}, invalid("header field %s has a line break that is not folding (RFC 5322 2.2.3)", name)
			}
			if err := checkLineLength(name, b.Len()-lineStart); err != nil {
				return msg.Field{}, err
			}
			b.WriteString("\r\n")
			lineStart = b.Len()
		case '\r', 0:
			return msg.Field{}, invalid("header field %s contains a bare CR or NUL (RFC 5322 2.2)", name)
		default:
			b.WriteByte(c)
		}
	}
	if err := checkLineLength(name, b.Len()-lineStart); err != nil {
		return msg.Field{}, err
	}
	b.WriteString("\r\n")
	return msg.Field{Name: name, Raw: b.Bytes()}, nil
}

func checkLineLength(name string, n int) error {
	if n > msg.MaxLineOctets {
		return invalid("header field %s has a line longer than %d octets (RFC 5322 2.1.1)", name, msg.MaxLineOctets)
	}
	return nil
}

func invalid(format string, args ...any) *msg.Error {
	return &msg.Error{Code: 550, Enhanced: [3]int{5, 6, 0}, Message: fmt.Sprintf(format, args...)}
}
