package dkim

import (
	"hash"
	"strconv"
	"strings"
)

// The relaxed canonicalization (RFC 6376 3.4.2, 3.4.4) and the signature
// field's layout. Every rule follows go-msgauth's signer byte for byte (a
// test signs with both and compares), so that what sendergate signs is
// what the verifiers it is tested against check; the difference is speed:
// the body is canonicalized a run of ordinary bytes at a time into one
// reused buffer, with no goroutine, pipe or per-chunk copies.

// relaxedHeader canonicalizes one header field (name, colon, value, with
// its folding and final CRLF): name lowercased and trimmed, the value
// unfolded with each run of blanks made one space and none at either end
// (RFC 6376 3.4.2).
func relaxedHeader(field string) string {
	k, v, ok := strings.Cut(field, ":")
	if !ok {
		return strings.TrimSpace(strings.ToLower(field)) + ":\r\n"
	}
	k = strings.TrimSpace(strings.ToLower(k))
	v = strings.Join(strings.FieldsFunc(v, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r'
	}), " ")
	return k + ":" + v + "\r\n"
}

// splitFields splits a header block (without the empty line that ends it)
// into fields, each with its continuation lines and ending in CRLF (a bare
// LF line end becomes CRLF).
func splitFields(header []byte) []string {
	if fields, ok := splitCRLFFields(string(header)); ok {
		return fields
	}
	return splitAnyFields(header)
}

// splitAnyFields is splitFields for any line ends, a string per field.
func splitAnyFields(header []byte) []string {
	var fields []string
	for len(header) > 0 {
		i := strings.IndexByte(string(header), '\n')
		var line []byte
		if i < 0 {
			line, header = header, nil
		} else {
			line, header = header[:i], header[i+1:]
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(fields) > 0 && len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			fields[len(fields)-1] += string(line) + "\r\n"
		} else {
			fields = append(fields, string(line)+"\r\n")
		}
	}
	return fields
}

// splitCRLFFields is splitFields for the usual header, every line ended
// by CRLF: the fields are substrings of s, so the header is copied once
// (the caller's string conversion) instead of once per field. ok is false
// when a line ends in a bare LF or the last has no line end.
func splitCRLFFields(s string) (fields []string, ok bool) {
	start := 0
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '\n')
		if j < 0 || j == 0 || s[i+j-1] != '\r' {
			return nil, false
		}
		if i > start && s[i] != ' ' && s[i] != '\t' {
			fields = append(fields, s[start:i])
			start = i
		}
		i += j + 1
	}
	if len(s) > start {
		fields = append(fields, s[start:])
	}
	return fields, true
}

// fieldName is the name of a header field as h= matches it: the text
// before the first colon (or the whole field without one), blanks trimmed.
func fieldName(field string) string {
	k, _, _ := strings.Cut(field, ":")
	return strings.TrimSpace(k)
}

// pickFields returns, for each name of keys in order, the field it signs
// (RFC 6376 5.4.2): the last occurrence not picked yet, searching up from
// the bottom; a name listed more often than it occurs picks nothing.
func pickFields(fields, keys []string) []string {
	picked := make([]string, 0, len(keys))
	used := make([]bool, len(fields))
	for _, k := range keys {
		for i := len(fields) - 1; i >= 0; i-- {
			if !used[i] && strings.EqualFold(fieldName(fields[i]), k) {
				used[i] = true
				picked = append(picked, fields[i])
				break
			}
		}
	}
	return picked
}

// blank marks the bytes the body canonicalization treats specially.
var blank = [256]bool{' ': true, '\t': true, '\r': true, '\n': true}

// bodyFlush is the size of the canonical-bytes buffer hashed at a time.
const bodyFlush = 1024

// bodyHasher is an io.Writer that hashes the relaxed canonical form of the
// body written to it (RFC 6376 3.4.4): a lone LF is taken as CRLF, each
// run of blanks within a line is one space, blanks at the end of a line
// go, empty lines at the end go, and a non-empty body ends in CRLF.
type bodyHasher struct {
	h       hash.Hash
	out     []byte // canonical bytes not hashed yet, in buf
	breaks  []byte // line breaks held back until a line with content follows
	blank   bool   // blanks held back (emitted as one space before content)
	prevCR  bool   // the previous byte was CR (for the lone-LF rule)
	written bool   // some content was emitted
	buf     [bodyFlush + 64]byte
}

func newBodyHasher(h hash.Hash) *bodyHasher {
	w := &bodyHasher{h: h}
	w.out = w.buf[:0]
	return w
}

// Write canonicalizes and hashes b; it never fails. The state lives in
// locals while it runs (no write barrier per byte run).
func (w *bodyHasher) Write(b []byte) (int, error) {
	out, breaks, isBlank, prevCR, written := w.out, w.breaks, w.blank, w.prevCR, w.written
	for i := 0; i < len(b); {
		switch b[i] {
		case ' ', '\t':
			isBlank, prevCR = true, false
		case '\r':
			isBlank, prevCR = false, true
			breaks = append(breaks, '\r')
		case '\n':
			if !prevCR {
				breaks = append(breaks, '\r')
			}
			isBlank, prevCR = false, false
			breaks = append(breaks, '\n')
		default:
			j := i + 1
			for j < len(b) && !blank[b[j]] {
				j++
			}
			if len(breaks) > 0 {
				out = append(out, breaks...)
				breaks = breaks[:0]
			}
			if isBlank {
				out = append(out, ' ')
				isBlank = false
			}
			if run := b[i:j]; len(out)+len(run) > bodyFlush {
				w.h.Write(out)
				out = w.buf[:0]
				if len(run) > bodyFlush {
					w.h.Write(run)
				} else {
					out = append(out, run...)
				}
			} else {
				out = append(out, run...)
			}
			prevCR, written = false, true
			i = j
			continue
		}
		i++
	}
	w.out, w.breaks, w.blank, w.prevCR, w.written = out, breaks, isBlank, prevCR, written
	return len(b), nil
}

// sum ends the body (its CRLF; trailing empty lines and blanks are
// dropped) and returns the body hash.
func (w *bodyHasher) sum() []byte {
	if w.written {
		w.out = append(w.out, '\r', '\n')
	}
	w.h.Write(w.out)
	w.out = w.buf[:0]
	return w.h.Sum(nil)
}

// signatureTag is one tag=value of the DKIM-Signature field.
type signatureTag struct{ name, value string }

// formatSignature lays out the DKIM-Signature field: the tags (sorted by
// name, b= last, as the caller gives them) on lines of at most about 75
// characters, then b= folded every 75 characters, ending in CRLF. With
// b="" it is the form that is hashed (RFC 6376 3.5, 3.7).
func formatSignature(tags []signatureTag, b string) string {
	var s strings.Builder
	s.Grow(256 + len(b))
	s.WriteString("DKIM-Signature:")
	line := ""
	for _, t := range tags {
		if 3+len(line)+len(t.value)+len(t.name) > 75 {
			s.WriteString(line)
			s.WriteString("\r\n")
			line = ""
		}
		line += " " + t.name + "=" + t.value + ";"
	}
	s.WriteString(line)
	s.WriteString("\r\n")
	folded := " b=" + b
	for i := 0; i < len(folded); i += 75 {
		if i > 0 {
			s.WriteString("\r\n ")
		}
		s.WriteString(folded[i:min(i+75, len(folded))])
	}
	s.WriteString("\r\n")
	return s.String()
}

// formatTime is the t= value: seconds since the Unix epoch.
func formatTime(unix int64) string { return strconv.FormatInt(unix, 10) }
