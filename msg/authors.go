package msg

import (
	"errors"
	"io"
	"mime"
	"net/mail"
	"slices"
	"strings"
	"unicode/utf8"
)

// Authors extracts the identities the policy must check (RFC 5322 3.6.2):
// the mailboxes of the single From field and the mailbox of the optional
// Sender field, each as its addr-spec (local part unquoted, as net/mail
// returns it). Display names and comments are never addresses: an RFC 2047
// encoded word or a quoted display name that looks like an address is
// ignored, and an addr-spec containing an encoded word is refused.
//
// AuthorMailboxes builds on Authors and is what the gate uses.
//
// Refusals are *Error values with 550 5.6.0: zero or several From fields,
// a From without mailbox, group syntax, several From mailboxes without a
// Sender field, several Sender fields, or a Sender without exactly one
// mailbox.
func Authors(h *Header) (from []string, sender string, err error) {
	froms := h.Get("From")
	if len(froms) != 1 {
		return nil, "", invalidf("message must have exactly one From header field (RFC 5322 3.6), it has %d", len(froms))
	}
	from, err = mailboxes("From", froms[0])
	if err != nil {
		return nil, "", err
	}
	senders := h.Get("Sender")
	switch {
	case len(senders) > 1:
		return nil, "", invalidf("message must have at most one Sender header field (RFC 5322 3.6), it has %d", len(senders))
	case len(senders) == 0 && len(from) > 1:
		return nil, "", invalidf("From has %d mailboxes, so a Sender header field is required (RFC 5322 3.6.2)", len(from))
	case len(senders) == 0:
		return from, "", nil
	}
	s, err := mailboxes("Sender", senders[0])
	if err != nil {
		return nil, "", err
	}
	if len(s) != 1 {
		return nil, "", invalidf("Sender header field must have exactly one mailbox (RFC 5322 3.6.2), it has %d", len(s))
	}
	return from, s[0], nil
}

// AuthorSet is what the author fields of a message ask the policy to
// authorize, as AuthorMailboxes returns it.
type AuthorSet struct {
	// Mailboxes holds every author mailbox, normalized with
	// NormalizeAddress and each listed once: the From mailboxes first, then
	// the Sender mailbox, then every Resent-From and Resent-Sender mailbox
	// in header order. Every one must be authorized for the message to pass.
	Mailboxes []string
	// Domain is the domain of the first From mailbox (normalized): the
	// DKIM d= to sign as (RFC 6376 3.5; DMARC aligns with From, RFC 7489 3.1).
	Domain string
}

// AuthorMailboxes returns every author identity of h that the policy must
// authorize (RFC 5322 3.6.2 From and Sender, RFC 5322 3.6.6 Resent-From
// and Resent-Sender), normalized. It is the one author extraction that the
// submission server and the milter share.
//
// Every refusal is a 550 5.6.0 *Error, the reply for a header that cannot
// be accepted as written: the From/Sender rules of Authors; a Resent-From
// without mailbox or with group syntax; a Resent-Sender without exactly one
// mailbox; and an author address whose domain is not a valid, unambiguous
// host name (an address literal, a fullwidth or other mapped character,
// an invisible character: see package dnsname). 5.7.1 stays reserved for
// a valid address that is not the account's to use, which the policy
// decides.
//
// Resent blocks (RFC 5322 3.6.6) are read leniently: the fields are not
// grouped into blocks and neither Resent-Date nor a Resent-Sender for a
// multi-mailbox Resent-From is required, but every mailbox named in any
// Resent-From or Resent-Sender field must be authorized, since a reader's
// client shows them as the people who resent the message.
func AuthorMailboxes(h *Header) (AuthorSet, error) {
	from, sender, err := Authors(h)
	if err != nil {
		return AuthorSet{}, err
	}
	type author struct{ field, addr string }
	all := make([]author, 0, len(from)+2)
	for _, a := range from {
		all = append(all, author{"From", a})
	}
	if sender != "" {
		all = append(all, author{"Sender", sender})
	}
	for _, f := range h.Fields {
		name, one := "", false
		switch {
		case strings.EqualFold(f.Name, "Resent-From"):
			name = "Resent-From"
		case strings.EqualFold(f.Name, "Resent-Sender"):
			name, one = "Resent-Sender", true
		default:
			continue
		}
		list, err := mailboxes(name, f.value())
		if err != nil {
			return AuthorSet{}, err
		}
		if one && len(list) != 1 {
			return AuthorSet{}, invalidf("Resent-Sender header field must have exactly one mailbox (RFC 5322 3.6.6), it has %d", len(list))
		}
		for _, a := range list {
			all = append(all, author{name, a})
		}
	}
	set := AuthorSet{Mailboxes: make([]string, 0, len(all))}
	for i, a := range all {
		norm, domain, err := normalizeAddress(a.addr)
		if err != nil {
			return AuthorSet{}, badAuthor(a.field, a.addr, err)
		}
		if i == 0 {
			set.Domain = domain
		}
		if !slices.Contains(set.Mailboxes, norm) {
			set.Mailboxes = append(set.Mailboxes, norm)
		}
	}
	return set, nil
}

// badAuthor is the 550 5.6.0 refusal of an author address whose domain
// dnsname.Normalize refuses; the text names the field, the address and the
// problem, in printable ASCII.
func badAuthor(field, addr string, err error) *Error {
	if len(addr) > 100 {
		cut := 100
		for cut > 0 && !utf8.RuneStart(addr[cut]) {
			cut--
		}
		addr = addr[:cut] + "..."
	}
	return invalidf("%s header field: address %+q cannot be authorized: %v", field, addr, err)
}

// mailboxes parses the mailbox-list value of the field named field.
func mailboxes(field string, value []byte) ([]string, error) {
	clean, group, err := stripComments(value)
	if err != nil {
		return nil, invalidf("cannot parse %s header field: %v", field, err)
	}
	if group {
		return nil, invalidf("%s header field must be a list of mailboxes, not a group (RFC 5322 3.6.2)", field)
	}
	parser := mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: rawCharset}}
	list, err := parser.ParseList(clean)
	if err != nil {
		return nil, invalidf("cannot parse %s header field (RFC 5322 3.4): %v", field, err)
	}
	if len(list) == 0 {
		return nil, invalidf("%s header field has no mailbox (RFC 5322 3.6.2)", field)
	}
	addrs := make([]string, 0, len(list))
	for _, a := range list {
		if strings.Contains(a.Address, "=?") && strings.Contains(a.Address, "?=") {
			return nil, invalidf("%s header field has an RFC 2047 encoded word in an address (RFC 2047 5)", field)
		}
		addrs = append(addrs, a.Address)
	}
	return addrs, nil
}

// rawCharset lets encoded words in charsets that mime.WordDecoder does not
// know (it knows UTF-8, ISO-8859-1 and US-ASCII) pass undecoded instead of
// failing the whole field: display names are never used for policy, so a
// mis-decoded windows-1252 or ISO-2022-JP name is harmless, while refusing
// it would reject ordinary mail.
func rawCharset(_ string, input io.Reader) (io.Reader, error) {
	return input, nil
}

// rootDot reports whether a '.' followed by rest ends an address: only
// white space before '>', ',' or the end of the value.
func rootDot(rest []byte) bool {
	for _, c := range rest {
		switch c {
		case ' ', '\t':
			continue
		case '>', ',':
			return true
		}
		return false
	}
	return true
}

// stripComments replaces every RFC 5322 comment (3.2.2) outside quoted
// strings and domain literals with a space, because net/mail does not accept
// a comment before an addr-spec. It also reports whether the value uses
// group syntax: a colon outside quotes, literals and angle brackets.
func stripComments(v []byte) (clean string, group bool, err error) {
	var b strings.Builder
	var depth, angle int
	var quoted, literal bool
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case depth > 0:
			switch c {
			case '\\':
				i++ // quoted-pair
			case '(':
				depth++
			case ')':
				if depth--; depth == 0 {
					b.WriteByte(' ')
				}
			}
			continue
		case quoted || literal:
			b.WriteByte(c)
			if c == '\\' && i+1 < len(v) {
				i++
				b.WriteByte(v[i])
			} else if (quoted && c == '"') || (literal && c == ']') {
				quoted, literal = false, false
			}
			continue
		}
		switch c {
		case '(':
			depth = 1
			continue
		case '"':
			quoted = true
		case '[':
			literal = true
		case '<':
			angle++
		case '>':
			angle--
		case ':':
			group = group || angle <= 0
		case '.':
			// A fully qualified domain's root dot (a@example.com.) is not
			// RFC 5322 syntax, but names the same domain: drop it so the
			// policy compares the domain itself.
			if rootDot(v[i+1:]) {
				continue
			}
		}
		b.WriteByte(c)
	}
	if depth > 0 || quoted || literal {
		return "", false, errors.New("unterminated comment, quoted string or domain literal")
	}
	return b.String(), group, nil
}
